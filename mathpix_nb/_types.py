"""Type aliases for the public API (kept in one place)."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from PIL import Image

    from ._images import PreparedImage

__all__ = ["Crop", "ImageInput"]

# What a user may pass as an image: a path, bytes, a binary file, a PIL image, a numpy array,
# an http(s) URL or data: URI (as str), or an already prepared image.
ImageInput = Union[
    str, "os.PathLike[str]", bytes, bytearray, IO[bytes], "Image.Image", "PreparedImage", Any
]
# (x, y, width, height) in pixels of the upright (EXIF-applied) image.
Crop = tuple[float, float, float, float]
