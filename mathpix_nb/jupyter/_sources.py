"""Read an image the panel was given (path, URL, bytes, file object, PIL image) in the kernel.

The panel keeps the original bytes in Python and sends the browser only a preview; the crop
the user draws is expressed in the pixels of the upright original, so the preview may be
smaller than the image without changing what is sent to Mathpix.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
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


def _pil_bytes(source: Any, name: str | None) -> tuple[bytes, str]:
    """A PIL image as PNG bytes, in any mode (the core's ``normalize_mode``: CMYK, F, I;16...)."""
    from .._image_pixels import normalize_mode

    label = name or "image.png"
    width, height = source.size
    if not width or not height:
        raise _bad(label, f"{label} is empty ({width}x{height} pixels): nothing to show or OCR.")
    try:
        source.load()
        buf = io.BytesIO()
        normalize_mode(source).save(buf, format="PNG")
    except (OSError, ValueError) as exc:
        raise _bad(
            label,
            f"Cannot read the PIL image {label} ({exc}). Fix: check that the file it was opened "
            "from is a complete image, or re-export it.",
        ) from None
    return buf.getvalue(), label


def _raw_bytes(source: Any, name: str | None) -> tuple[bytes, str]:
    from .._image_io import read_input

    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "image"
    if hasattr(source, "save") and hasattr(source, "size"):  # a PIL image
        return _pil_bytes(source, name)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, str) and text.strip().startswith("data:"):
            return _data_uri(text.strip()), name or "image"
        if isinstance(text, str) and text.strip().startswith(("http://", "https://")):
            url = text.strip()
            tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return _fetch(url), name or tail or "image"
    if isinstance(source, (str, os.PathLike)) or callable(getattr(source, "read", None)):
        # the core's bounded read: regular files only (a FIFO, device or socket is refused
        # unread), a size cap, clear messages for empty paths, text-mode files, closed files
        label = str(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "file"
        data, file_name = read_input(source, label, max_bytes=MAX_DOWNLOAD_BYTES)
        return data, name or file_name or "image"
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
    except Image.DecompressionBombError as exc:
        raise _bad(
            label,
            f"{label} is too large to decode safely ({exc}). Fix: downscale it first.",
        ) from None
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
