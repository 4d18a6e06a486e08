"""The formats Mathpix reads through OpenCV that Pillow does not: OpenEXR, Radiance HDR,
PFM and PAM, plus any file Pillow fails to decode (float or 16-bit multi-band TIFFs, ...).

Optional: ``pip install 'mathpix_nb[opencv]'`` (``opencv-python-headless``). The client core and
the local server share this module, so both decode the same files the same way. HDR formats
(EXR, HDR, PFM) hold linear light in floats and are tone-mapped to 8-bit sRGB.

OpenEXR needs an OpenCV build with its OpenEXR codec (the 4.x wheels; the 5.0 wheels have none).
OpenCV disables that codec unless ``OPENCV_IO_ENABLE_OPENEXR`` is set; we set it to ``1`` unless
you set it yourself (``0`` keeps EXR refused).
"""

from __future__ import annotations

import os
import re
import struct
from functools import lru_cache
from typing import Any

from PIL import Image

from ._exceptions import ImageError

__all__ = [
    "HDR_FORMATS",
    "INSTALL_HINT",
    "OPENCV_ONLY",
    "decode",
    "header",
    "opencv_reads",
    "sniff",
]

#: Formats (our names) the API reads via OpenCV that Pillow cannot open.
OPENCV_ONLY = frozenset({"EXR", "HDR", "PFM", "PAM"})
#: Formats holding linear float light: tone-mapped to 8 bits.
HDR_FORMATS = frozenset({"EXR", "HDR", "PFM"})
INSTALL_HINT = "pip install 'mathpix_nb[opencv]'"
_NAMES = {
    "TIFF": "a TIFF in a layout Pillow cannot read (float or 16-bit multi-band)",
    "EXR": "OpenEXR",
    "HDR": "Radiance HDR",
    "PFM": "PFM (portable float map)",
    "PAM": "PAM (portable arbitrary map)",
}
_CONTENT_TYPES = {
    "TIFF": "image/tiff",
    "EXR": "image/x-exr",
    "HDR": "image/vnd.radiance",
    "PFM": "image/x-portable-floatmap",
    "PAM": "image/x-portable-arbitrarymap",
}
_EXTENSIONS = {"TIFF": ".tif", "EXR": ".exr", "HDR": ".hdr", "PFM": ".pfm", "PAM": ".pam"}


def describe(fmt: str) -> str:
    return _NAMES.get(fmt, fmt)


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES.get(fmt, "application/octet-stream")


def extension(fmt: str) -> str:
    return _EXTENSIONS.get(fmt, "")


def sniff(data: bytes) -> str | None:
    """Our name of a format for OpenCV when Pillow cannot open the bytes: an OpenCV-only
    format, or a TIFF (whose float and 16-bit multi-band layouts Pillow does not read)."""
    head = data[:16]
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"v/1\x01"):
        return "EXR"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "HDR"
    if re.match(rb"P[Ff]\s", head):
        return "PFM"
    if re.match(rb"P7\s", head):
        return "PAM"
    return None


@lru_cache(maxsize=1)
def _cv2() -> Any:
    """The cv2 module, or None when opencv is not installed."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    try:
        import cv2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return cv2


def available() -> bool:
    """True when OpenCV (``opencv-python-headless``) can be imported."""
    return _cv2() is not None


@lru_cache(maxsize=1)
def _exr_codec() -> bool:
    cv2 = _cv2()
    if cv2 is None or os.environ.get("OPENCV_IO_ENABLE_OPENEXR", "1").lower() in ("0", "false"):
        return False
    for line in str(cv2.getBuildInformation()).splitlines():
        if line.strip().startswith("OpenEXR:"):
            return "NO" not in line.split(":", 1)[1]
    return False


def opencv_reads(fmt: str | None) -> bool:
    """True when the installed OpenCV can decode ``fmt`` (None: any format OpenCV may try)."""
    if _cv2() is None:
        return False
    return _exr_codec() if fmt == "EXR" else True


def missing_hint(fmt: str) -> str:
    """What to install (or do) to read ``fmt``."""
    if fmt == "EXR" and _cv2() is not None:
        return (
            "this OpenCV build has no OpenEXR codec (the 5.0 wheels dropped it, and "
            "OPENCV_IO_ENABLE_OPENEXR=0 disables it): pip install 'opencv-python-headless<5'"
        )
    return f"{INSTALL_HINT} so it can be decoded and prepared"


# -- headers: the size before decoding (decompression-bomb and memory guards) --------------
def _exr_header(data: bytes) -> tuple[int, int, int, int] | None:
    pos, end = 8, min(len(data), 1 << 20)
    width = height = 0
    channels = 0
    sample = 4
    while pos < end and data[pos] != 0:
        name_end = data.find(b"\x00", pos, end)
        type_end = data.find(b"\x00", name_end + 1, end)
        if name_end < 0 or type_end < 0 or type_end + 5 > end:
            return None
        name = data[pos:name_end]
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value = type_end + 5
        if size < 0 or value + size > len(data):
            return None
        if name == b"dataWindow" and size == 16:
            x0, y0, x1, y1 = struct.unpack_from("<4i", data, value)
            width, height = x1 - x0 + 1, y1 - y0 + 1
        elif name == b"channels":
            cpos = value
            while cpos < value + size and data[cpos] != 0:
                cend = data.find(b"\x00", cpos, value + size)
                if cend < 0:
                    break
                channels += 1
                cpos = cend + 1 + 16
        pos = value + size
    if width <= 0 or height <= 0:
        return None
    return width, height, max(1, channels), sample


def _hdr_header(data: bytes) -> tuple[int, int, int, int] | None:
    match = re.search(rb"\n\n([-+][YX]) (\d+) ([-+][YX]) (\d+)", data[:65536])
    if match is None:
        return None
    first, second = int(match.group(2)), int(match.group(4))
    if match.group(1).endswith(b"Y"):
        height, width = first, second
    else:
        width, height = first, second
    return width, height, 3, 4


def _pfm_header(data: bytes) -> tuple[int, int, int, int] | None:
    match = re.match(rb"P([Ff])\s+(\d+)\s+(\d+)\s", data[:256])
    if match is None:
        return None
    channels = 3 if match.group(1) == b"F" else 1
    return int(match.group(2)), int(match.group(3)), channels, 4


def _pam_header(data: bytes) -> tuple[int, int, int, int] | None:
    head = data[: min(len(data), 4096)]
    fields = dict(re.findall(rb"(WIDTH|HEIGHT|DEPTH|MAXVAL)\s+(\d+)", head))
    try:
        width, height = int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    except KeyError:
        return None
    depth = int(fields.get(b"DEPTH", b"1"))
    sample = 2 if int(fields.get(b"MAXVAL", b"255")) > 255 else 1
    return width, height, depth, sample


def _tiff_header(data: bytes) -> tuple[int, int, int, int] | None:
    """The first IFD's ImageWidth, ImageLength, SamplesPerPixel and BitsPerSample."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, offset)
    tags: dict[int, int] = {}
    for i in range(min(count, 4096)):
        tag, kind, n, raw = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * i)
        if tag not in (256, 257, 258, 277) or kind not in (3, 4):
            continue
        if kind == 3 and n > 2:  # several shorts (BitsPerSample per band): at an offset
            (where,) = struct.unpack_from(order + "I", raw)
            (value,) = struct.unpack_from(order + "H", data, where)
        elif kind == 3:
            (value,) = struct.unpack_from(order + "H", raw)
        else:
            (value,) = struct.unpack_from(order + "I", raw)
        tags[tag] = value
    if 256 not in tags or 257 not in tags:
        return None
    bits = tags.get(258, 8)
    return tags[256], tags[257], max(1, tags.get(277, 1)), max(1, (bits + 7) // 8)


def header(data: bytes, fmt: str) -> tuple[int, int, int, int] | None:
    """``(width, height, channels, bytes per sample)`` read from the header, or None."""
    parse = {
        "EXR": _exr_header,
        "HDR": _hdr_header,
        "PFM": _pfm_header,
        "PAM": _pam_header,
        "TIFF": _tiff_header,
    }
    try:
        return parse[fmt](data) if fmt in parse else None
    except (struct.error, ValueError, IndexError):
        return None


# -- decoding ----------------------------------------------------------------------------
def decode(data: bytes, source: str, fmt: str | None = None) -> Image.Image:
    """Decode with OpenCV into an 8-bit PIL image (L, RGB or RGBA; HDR tone-mapped).

    Raises ``ImageError`` when OpenCV is missing or cannot decode the bytes. The caller checks
    the size (``header``) before calling: OpenCV decodes in full.
    """
    cv2 = _cv2()
    if cv2 is None:
        raise ImageError(
            f"{source} is {describe(fmt or 'an OpenCV format')}: {missing_hint(fmt or '')}.",
            source=source,
        )
    import numpy as np

    try:
        array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        array, reason = None, str(exc).strip().splitlines()[-1][:160]
    else:
        reason = "OpenCV could not decode it"
    if array is None or array.size == 0:
        hint = missing_hint(fmt) if fmt == "EXR" and not _exr_codec() else "re-export it as PNG"
        raise ImageError(
            f"Cannot decode {source} ({describe(fmt or 'image')}): {reason}. Fix: {hint}.",
            source=source,
        )
    return to_pil(array, hdr=fmt in HDR_FORMATS)


def to_pil(array: Any, *, hdr: bool) -> Image.Image:
    """An OpenCV array (BGR order, any depth) as an 8-bit PIL image."""
    import numpy as np

    from ._image_pixels import _stretch, from_u16, tone_map

    arr = array
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype.kind == "f":
        if hdr:
            arr = tone_map(arr)
        else:
            arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            arr = _stretch(arr, float(arr.min()), float(arr.max()), unit=True)
    elif arr.dtype == np.uint16:
        arr = from_u16(arr)
    elif arr.dtype != np.uint8:
        arr = _stretch(arr, float(arr.min()), float(arr.max()), unit=False)
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 2:  # gray + alpha
            pass
        elif channels == 3:
            arr = arr[:, :, ::-1]
        elif channels >= 4:
            arr = arr[:, :, [2, 1, 0, 3]]
    return Image.fromarray(np.ascontiguousarray(arr))
