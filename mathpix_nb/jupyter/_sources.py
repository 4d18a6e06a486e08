"""Read an image the panel was given (path, URL, bytes, file object, PIL image) in the kernel.

The panel keeps the original bytes in Python and sends the browser only a preview; the crop
the user draws is expressed in the pixels of the upright original, so the preview may be
smaller than the image without changing what is sent to Mathpix.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LoadedImage", "read_image", "rotated"]

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
PREVIEW_MAX_SIDE = 1600


@dataclass(frozen=True)
class LoadedImage:
    """Original bytes plus what the panel needs to show and crop them."""

    data: bytes
    name: str
    width: int  # upright (EXIF orientation applied), in real pixels
    height: int
    preview: bytes  # upright, at most PREVIEW_MAX_SIDE pixels on its long side
    preview_mime: str


def _bad(source: str, why: str) -> Exception:
    from .._exceptions import ImageError

    return ImageError(why, source=source)


def _fetch(url: str) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=20.0) as response:
            if response.status_code >= 400:
                raise _bad(
                    url,
                    f"Could not download {url}: the server answered HTTP {response.status_code}.",
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise _bad(
                        url,
                        f"{url} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MB; "
                        "download it and crop it first.",
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _bad(url, f"Could not download {url}: {exc}.") from None
    return b"".join(chunks)


def _data_uri(uri: str) -> bytes:
    import base64
    import binascii

    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise _bad(uri[:40], "Only base64 data: URIs are supported (data:image/png;base64,...).")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise _bad(uri[:40], "The data: URI is not valid base64.") from None


def _raw_bytes(source: Any, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "image"
    if hasattr(source, "save") and hasattr(source, "size"):  # a PIL image
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        return buf.getvalue(), name or "image.png"
    if hasattr(source, "read"):
        data = source.read()
        return bytes(data), name or Path(str(getattr(source, "name", "image"))).name
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, str) and text.startswith("data:"):
            return _data_uri(text), name or "image"
        if isinstance(text, str) and text.startswith(("http://", "https://")):
            tail = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return _fetch(text), name or tail or "image"
        path = Path(text).expanduser()
        if not path.is_file():
            raise _bad(
                str(text),
                f"No image file at {str(text)!r} (looked in {Path.cwd()}). "
                "Check the path, or give a full path or an http(s) URL.",
            )
        return path.read_bytes(), name or path.name
    raise _bad(
        repr(source)[:80],
        f"Cannot load an image from a {type(source).__name__}; "
        "give a path, an http(s) URL, bytes or a PIL image.",
    )


def read_image(source: Any, name: str | None = None) -> LoadedImage:
    """Load ``source`` and make an upright preview; raise ImageError with a plain reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    data, label = _raw_bytes(source, name)
    if not data:
        raise _bad(label, f"{label} is empty.")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img) or img
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _bad(
            label,
            f"{label} is not an image the panel can read ({exc}). "
            "Use PNG, JPEG, GIF, WebP, BMP or TIFF.",
        ) from None
    width, height = upright.size
    preview = upright.copy()
    preview.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    buf = io.BytesIO()
    if preview.mode in ("RGBA", "LA", "P", "1", "L") or max(width, height) <= 800:
        preview.convert("RGBA").save(buf, format="PNG")
        mime = "image/png"
    else:
        preview.convert("RGB").save(buf, format="JPEG", quality=85)
        mime = "image/jpeg"
    return LoadedImage(data, label, width, height, buf.getvalue(), mime)


def rotated(data: bytes, degrees: int) -> Any:
    """The upright image turned clockwise by ``degrees`` (a multiple of 90) as a PIL image."""
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(data))
    img.load()
    upright = ImageOps.exif_transpose(img) or img
    return upright.rotate(-degrees, expand=True)
