"""Type aliases for the public API (kept in one place)."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

    from ._images import PreparedImage

__all__ = ["ArrayLike", "Crop", "DocumentInput", "ImageInput"]


@runtime_checkable
class ArrayLike(Protocol):
    """Anything with numpy's array interface (a numpy array, without importing numpy)."""

    @property
    def __array_interface__(self) -> dict[str, Any]: ...


# What a user may pass as an image: a path, bytes, a binary file, a PIL image, a numpy array,
# an http(s) URL or data: URI (as str), or an already prepared image.
ImageInput = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    IO[bytes],
    "Image.Image",
    ArrayLike,
    "PreparedImage",
]
# A document for v3/pdf: a path, bytes, a binary file or an http(s) URL.
DocumentInput = Union[str, "os.PathLike[str]", bytes, bytearray, IO[bytes]]
# (x, y, width, height) in pixels of the upright (EXIF-applied) image.
Crop = tuple[float, float, float, float]
