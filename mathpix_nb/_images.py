"""Image input normalisation and preparation before upload.

Mathpix ignores EXIF orientation and its answer time grows with the upload size, so by
default every local image is turned upright, cropped if asked (in upright pixels), downscaled
and encoded to about 100 KB, at decoder speed and without giving up legibility:

* the size comes from the cheap steps first: JPEG DCT scaling (``draft``) and integer
  ``reduce()``; resampling only when those cannot land between the legibility floor and
  ``max_side``;
* the long side never drops below ``min_side`` (1750 px: about 150 dpi on an A4 page) nor the
  short side below ``min_short_side`` to meet the byte target: the target is exceeded instead,
  and ``PreparedImage.over_target_reason`` says so;
* one encode in the usual case: JPEG quality and JPEG-vs-PNG are predicted from a few bands of
  the image, never by encoding the whole image both ways;
* memory is bounded: files are read with a cap (``_image_io``), decoding is refused above
  ``max_decode_bytes`` unless it can be done at reduced size (JPEG).

An image that is already small, upright, uncropped and in a format the API reads is sent
byte-for-byte unchanged. Everything here is I/O-free except reading the input file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import struct
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, UnidentifiedImageError

from . import _image_cv as cv
from ._exceptions import ConfigurationError, ImageError
from ._image_io import DEFAULT_MAX_FILE_BYTES, read_input
from ._image_pixels import check_crop, clip_crop, from_array, normalize_mode

__all__ = [
    "ImagePrep",
    "PreparedImage",
    "clip_crop",
    "describe_source",
    "is_remote",
    "prep_threads",
    "prepare_image",
    "raw_image",
]

_log = logging.getLogger("mathpix_nb")

# Pillow format names of what the API reads (OpenCV's list) and we can pass through as is.
API_FORMATS = {"JPEG", "PNG", "BMP", "DIB", "WEBP", "TIFF", "JPEG2000", "PPM", "SUN"}
# Pixel modes we pass through untouched; others (CMYK, 16-bit, float...) are converted.
_PASS_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}  # when fully opaque
_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "DIB": "image/bmp",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "JPEG2000": "image/jp2",
    "PPM": "image/x-portable-anymap",
    "SUN": "image/x-sun-raster",
}
_EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "DIB": ".bmp",
    "WEBP": ".webp",
    "TIFF": ".tif",
    "JPEG2000": ".jp2",
    "PPM": ".ppm",
    "SUN": ".ras",
}
_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transposition that makes the image upright (as ImageOps does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Bytes per pixel of Pillow's in-memory image, by mode (RGB is stored as 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Every resample is a downscale by less than 2 (draft / reduce() take the big steps first), where
# bilinear (antialiased by Pillow) reads as well as bicubic for half the time.
_RESAMPLE = Image.Resampling.BILINEAR
# Shrink for the byte target only by steps of at least 15 % (about 28 % fewer bytes).
_MIN_SHRINK = 0.85
# Formats whose headers Pillow reads but whose pixel layouts it may not (float, 16-bit RGB):
# decoded by OpenCV instead when installed. (Truncated files of other formats stay errors.)
_OPENCV_FALLBACK = {"TIFF"}


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    register_heif_opener()
    return True


_HEIF_AVAILABLE = _register_heif()


def prep_threads() -> int:
    """Worker threads for image preparation: one per usable core (Pillow releases the GIL
    while it decodes, resizes and encodes, so more threads than cores only add memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores)


@dataclass(frozen=True)
class ImagePrep:
    """How local images are prepared before upload.

    Args:
        target_bytes: aim for uploads of about this size (Mathpix recommends < 100 KB).
        max_side: the long side is downscaled to at most this many pixels...
        min_side: ...and never below this to reach the byte target (1750 px keeps an A4 page at
            about 150 dpi, so subscripts and small print stay readable); the target is then
            exceeded and ``PreparedImage.over_target_reason`` says why.
        min_short_side: the short side is never downscaled below this (or its own size, if
            smaller): a long strip keeps its text height and may exceed ``max_side``...
        max_long_side: ...up to this long side; a strip that cannot fit both (a 50000x10
            image) is refused with ``ImageError`` (crop it into pieces).
        jpeg_quality: the highest JPEG quality used; lowered to ``min_jpeg_quality`` as needed.
        allow_png: send lossless PNG when it is predicted no bigger than the JPEG (line art,
            screenshots) or within the byte target.
        exif: apply the EXIF orientation (the API ignores it).
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).
        max_file_bytes: never read more than this from a file or file object.
        max_decode_bytes: refuse images whose decoded pixels would need more memory than this,
            unless they can be decoded at reduced size (JPEG).
        lossless: encode PNG only, never downscale (used by ``prepare=False`` with a crop).
    """

    target_bytes: int = 100_000
    max_side: int = 2048
    min_side: int = 1750
    min_short_side: int = 64
    max_long_side: int = 8192
    jpeg_quality: int = 85
    min_jpeg_quality: int = 50
    allow_png: bool = True
    exif: bool = True
    max_pixels: int = 180_000_000
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_decode_bytes: int = 256_000_000
    lossless: bool = False

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ConfigurationError(
                        f"ImagePrep({item.name}={value!r}): must be True or False."
                    )
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"ImagePrep({item.name}={value!r}): must be a whole number > 0."
                )
        if not 1 <= self.min_jpeg_quality <= self.jpeg_quality <= 100:
            raise ConfigurationError(
                f"ImagePrep(jpeg_quality={self.jpeg_quality}, min_jpeg_quality="
                f"{self.min_jpeg_quality}): need 1 <= min_jpeg_quality <= jpeg_quality <= 100."
            )


@dataclass(frozen=True, repr=False)
class PreparedImage:
    """Image bytes ready to upload, with where they came from and what preparation did.

    ``scale`` is the sent size over the (upright, cropped) original; ``over_target_reason`` is
    set when the bytes exceed ``ImagePrep.target_bytes`` (legibility kept instead);
    ``quality`` is the JPEG quality used (None for PNG or unchanged bytes); ``decoder`` is
    ``"pillow"`` or ``"opencv"``.
    """

    data: bytes
    content_type: str
    filename: str
    sha256: str
    source: str
    width: int
    height: int
    original_bytes: int | None = None
    unchanged: bool = field(default=False, compare=False)
    scale: float = field(default=1.0, compare=False)
    over_target_reason: str | None = field(default=None, compare=False)
    quality: int | None = field(default=None, compare=False)
    decoder: str = field(default="pillow", compare=False)

    def __repr__(self) -> str:
        extra = f", scale={self.scale:.3g}" if self.scale != 1.0 else ""
        if self.quality is not None:
            extra += f", quality={self.quality}"
        if self.over_target_reason:
            extra += f", over_target_reason={self.over_target_reason!r}"
        return (
            f"PreparedImage(source={self.source!r}, {self.width}x{self.height}, "
            f"{self.content_type}, {len(self.data)} bytes, original_bytes={self.original_bytes}"
            f"{extra})"
        )


def is_remote(image: Any) -> bool:
    """True for inputs sent as JSON ``src``: http(s) URLs and ``data:`` URIs."""
    return isinstance(image, str) and image.lstrip().lower().startswith(
        ("http://", "https://", "data:")
    )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:80]}…({len(text):,} characters)"


def describe_source(image: Any) -> str:
    """A short, secret-free name for an input, used in messages."""
    if isinstance(image, PreparedImage):
        return image.source
    if isinstance(image, str):
        stripped = image.lstrip()
        if stripped[:5].lower() == "data:":
            return stripped[: stripped.find(",") if "," in stripped else 30][:40] + ",…"
        if stripped[:8].lower().startswith(("http://", "https://")):
            from ._config import safe_url

            return _short(safe_url(stripped) or stripped)
        return _short(image)
    if isinstance(image, os.PathLike):
        path = os.fspath(image)
        return _short(os.fsdecode(path) if isinstance(path, bytes) else path)
    if isinstance(image, bytes | bytearray | memoryview):
        return f"<{len(image)} bytes>"
    if isinstance(image, Image.Image):
        return f"<PIL image {image.width}x{image.height} {image.mode}>"
    shape = getattr(image, "shape", None)
    if shape is not None and hasattr(image, "dtype"):
        try:
            dims = "x".join(map(str, shape))
        except TypeError:
            dims = "?"
        return f"<numpy array {dims} {image.dtype}>"
    name = getattr(image, "name", None)
    if isinstance(name, str):
        return _short(name)
    return f"<{type(image).__name__}>"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_array(image: Any) -> bool:
    return hasattr(image, "__array_interface__") or (
        hasattr(image, "shape") and hasattr(image, "dtype")
    )


def _check_pixels(width: int, height: int, prep: ImagePrep, source: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(
            f"Image {source} is empty ({width}x{height} pixels): nothing to OCR.",
            source=source,
        )
    if width * height > prep.max_pixels:
        raise ImageError(
            f"Image {source} has {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {prep.max_pixels:,} (a guard against decompression bombs). Fix: crop or "
            "downscale it first, or raise ImagePrep(max_pixels=...) if you trust the file.",
            source=source,
        )


def _mb(n: float) -> str:
    return f"{n / 1_000_000:,.0f} MB"


def _check_decode(
    width: int, height: int, per_pixel: int, prep: ImagePrep, source: str, what: str
) -> None:
    """Refuse a decode that would need more memory than ``prep.max_decode_bytes``."""
    need = width * height * per_pixel
    if need > prep.max_decode_bytes:
        raise ImageError(
            f"Decoding {source} ({width}x{height} {what}) needs about {_mb(need)} of memory, "
            f"more than max_decode_bytes={_mb(prep.max_decode_bytes)}; only JPEG can be "
            "decoded at reduced size. Fix: convert it to JPEG, crop or downscale it first, or "
            "raise ImagePrep(max_decode_bytes=...).",
            source=source,
        )


@dataclass
class _Loaded:
    """An opened (maybe not yet decoded) input."""

    im: Image.Image
    original: bytes | None = None
    filename: str | None = None
    fmt: str | None = None
    decoder: str = "pillow"
    orientation: int = 1


def _unreadable(data: bytes, source: str) -> ImageError:
    head = data[:16]
    cv_fmt = cv.sniff(data)
    if cv_fmt is not None:
        return ImageError(
            f"{source} is {cv.describe(cv_fmt)}, which Mathpix reads but Pillow cannot. Fix: "
            f"{cv.missing_hint(cv_fmt)}, or pass prepare=False to send the file as it is (no "
            "EXIF, downscaling or byte target).",
            source=source,
        )
    if head.startswith(b"%PDF"):
        fix = "it is a PDF: use client.pdf(...) for documents"
    elif head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypheif", b"ftyphevc"):
        fix = (
            "the HEIC/HEIF file could not be decoded; re-export it as JPEG"
            if _HEIF_AVAILABLE
            else "it is HEIC/HEIF: `pip install pillow-heif` so it can be converted"
        )
    elif head.lstrip()[:1] in (b"<", b"{", b"["):
        fix = "it looks like text (HTML, XML or JSON), not an image: check where it came from"
    else:
        fix = "convert it to PNG or JPEG"
    return ImageError(
        f"Cannot read {source} as an image (not a format Pillow or the Mathpix API reads). "
        f"Fix: {fix}.",
        source=source,
    )


def _open_bytes(data: bytes, source: str, prep: ImagePrep) -> _Loaded:
    if not data:
        raise ImageError(f"Image {source} is empty (0 bytes).", source=source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"Image {source} is too large to decode safely ({exc}). Fix: downscale it first "
            "(Pillow's own guard, PIL.Image.MAX_IMAGE_PIXELS, also applies).",
            source=source,
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        cv_fmt = cv.sniff(data)
        if cv_fmt is not None and cv.opencv_reads(cv_fmt):
            return _open_with_opencv(data, source, prep, cv_fmt)
        raise _unreadable(data, source) from exc
    except Exception as exc:  # Pillow plugins raise many types on corrupt headers
        raise ImageError(
            f"Cannot read {source} as an image ({type(exc).__name__}: {exc}). Fix: check that "
            "the file is a complete image, or convert it to PNG or JPEG.",
            source=source,
        ) from exc
    _check_pixels(im.width, im.height, prep, source)
    return _Loaded(im=im, original=data, fmt=im.format)


def _open_with_opencv(
    data: bytes, source: str, prep: ImagePrep, fmt: str | None, orientation: int = 1
) -> _Loaded:
    size = cv.header(data, fmt) if fmt else None
    if size is None:  # OpenCV decodes in full: never without knowing the size
        raise ImageError(
            f"Cannot read the header of {source} ({cv.describe(fmt or '')}): it is truncated "
            "or corrupt. Fix: re-export the file.",
            source=source,
        )
    width, height, channels, sample = size
    _check_pixels(width, height, prep, source)
    # OpenCV decodes in full, and the conversion to 8 bits works on float32 copies
    per_pixel = channels * (4 if fmt in cv.HDR_FORMATS or sample > 1 else sample)
    _check_decode(width, height, per_pixel, prep, source, cv.describe(fmt or ""))
    im = cv.decode(data, source, fmt)
    _check_pixels(im.width, im.height, prep, source)
    return _Loaded(im=im, original=data, fmt=fmt, decoder="opencv", orientation=orientation)


def _png_exif(data: bytes) -> bytes | None:
    """The eXIf chunk of a PNG, found by walking the chunk headers (no decoding)."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


def _orientation(im: Image.Image, data: bytes | None, source: str) -> int:
    """The EXIF orientation (1 when absent or malformed), read without decoding pixels:
    Pillow's PNG ``getexif()`` decodes the whole image to look for an eXIf chunk after the
    pixel data, which would bypass the decode budget and hide decode errors."""
    try:
        if im.format == "PNG" and "exif" not in im.info:
            if data is None:  # a lazily opened PIL image: decode it (errors as ImageError)
                _load_pixels(im, source)
                exif = im.getexif()
            else:
                chunk = _png_exif(data)
                if chunk is None:
                    return 1
                exif = Image.Exif()
                exif.load(chunk)
        else:
            exif = im.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1) or 1)
    except ImageError:
        raise
    except Exception:  # malformed EXIF must not stop OCR
        return 1
    return value if value in _TRANSPOSE else 1


def _upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _box_to_raw(
    box: tuple[int, int, int, int], orientation: int, raw_w: int, raw_h: int
) -> tuple[int, int, int, int]:
    """An upright box (x, y, w, h) as (x0, y0, x1, y1) in the stored (raw) pixels."""
    u0, v0, w, h = box
    u1, v1 = u0 + w, v0 + h
    W, H = raw_w, raw_h  # the raw image's width and height

    def raw(u: int, v: int) -> tuple[int, int]:
        if orientation == 2:
            return W - u, v
        if orientation == 3:
            return W - u, H - v
        if orientation == 4:
            return u, H - v
        if orientation == 5:
            return v, u
        if orientation == 6:
            return v, H - u
        if orientation == 7:
            return W - v, H - u
        if orientation == 8:
            return W - v, u
        return u, v

    (xa, ya), (xb, yb) = raw(u0, v0), raw(u1, v1)
    return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def _has_transparency(im: Image.Image) -> bool:
    """True when some pixel is see-through: the API (OpenCV) would drop alpha and show
    whatever colour hides under it, often black, so such images are flattened onto white."""
    if "transparency" in im.info:
        return True
    if im.mode in ("RGBA", "LA", "PA"):
        return _low(im.getchannel("A")) < 255
    return False


def _low(band: Image.Image) -> float:
    """The smallest value of a single-band image."""
    extrema: Any = band.getextrema()
    return float(extrema[0])


def _high(band: Image.Image) -> float:
    """The largest value of a single-band image."""
    extrema: Any = band.getextrema()
    return float(extrema[1])


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite transparency onto white (OCR engines read dark-on-light best)."""
    if im.mode != "RGBA":
        return im
    alpha = im.getchannel("A")
    if _low(alpha) == 255:
        return im.convert("RGB")
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, mask=alpha)
    return background


def _is_gray(im: Image.Image) -> bool:
    if im.mode == "L":
        return True
    small = im.resize((64, 64), Image.Resampling.NEAREST)
    if small.mode != "RGB":
        small = small.convert("RGB")
    r, g, b = small.split()
    spread = _high(ImageChops.difference(r, g)) + _high(ImageChops.difference(g, b))
    return spread <= 12


def _few_colours(im: Image.Image) -> bool:
    """Flat areas of one exact colour (screenshots, rendered pages, diagrams): PNG may win.

    Sampled without smoothing, so camera and scanner noise keep the top colour's share low.
    """
    sample = im.resize((min(128, im.width), min(128, im.height)), Image.Resampling.NEAREST)
    colours = sample.getcolors(maxcolors=4096)
    if colours is None:
        return False
    return max(count for count, _ in colours) >= 0.25 * sample.width * sample.height


def _stem(name: str | None) -> str:
    if not name:
        return "image"
    return Path(name).stem or "image"


# -- planning: which size, reached how ---------------------------------------------------
def _plan(width: int, height: int, prep: ImagePrep, source: str) -> tuple[int, int]:
    """(goal, floor) for the long side: downscale to ``goal``; fit the byte target by
    shrinking no further than ``floor``."""
    long, short = max(width, height), min(width, height)
    if prep.lossless:
        return long, long
    goal = min(long, prep.max_side)
    short_floor = min(short, prep.min_short_side)
    if short * goal / long < short_floor:
        goal = min(long, math.ceil(long * short_floor / short))
        if goal > prep.max_long_side:
            shrunk = short * prep.max_long_side / long
            raise ImageError(
                f"Image {source} ({width}x{height}) is too long and thin to send legibly: "
                f"fitting its long side into max_long_side={prep.max_long_side} would shrink "
                f"its short side to {shrunk:.1f} px (the floor is {short_floor} px). Fix: crop "
                f"it into pieces of at most {prep.max_long_side} x {short} px (crop=...), or "
                "raise ImagePrep(max_long_side=...).",
                source=source,
            )
    floor = min(goal, max(prep.min_side, math.ceil(long * short_floor / short)))
    return goal, floor


def _draft_factor(region_long: int, goal: int, floor: int) -> int:
    """The largest JPEG DCT scale (1, 2, 4, 8) that keeps the region's long side >= floor."""
    factor = 1
    while factor < 8 and region_long / (factor * 2) >= floor and region_long / factor > goal:
        factor *= 2
    return factor


def _load_pixels(im: Image.Image, source: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"Image {source} is too large to decode safely ({exc}). Fix: downscale it first.",
            source=source,
        ) from exc
    except MemoryError as exc:
        raise ImageError(
            f"Out of memory decoding {source}. Fix: downscale it first, or lower "
            "ImagePrep(max_decode_bytes=...) so such files are refused up front.",
            source=source,
        ) from exc
    except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, zlib, struct
        raise ImageError(
            f"Cannot decode {source}: {type(exc).__name__}: {exc}. Fix: check that the file is "
            "a complete image (it may be truncated or corrupt), or re-export it.",
            source=source,
        ) from exc


def _decode(
    loaded: _Loaded, region_long: int, goal: int, floor: int, prep: ImagePrep, source: str
) -> Image.Image:
    """Decode the pixels: JPEGs at the DCT scale the plan allows, others in full (within the
    memory budget). Files Pillow opens but cannot decode (float or 16-bit multi-band TIFFs)
    fall back to OpenCV when it is installed."""
    im = loaded.im
    if loaded.decoder == "opencv":
        return im
    if loaded.original is None:  # a PIL image (maybe lazily opened) or converted array
        _load_pixels(im, source)
        return im
    if loaded.fmt == "JPEG" and not prep.lossless:
        factor = _draft_factor(region_long, goal, floor)
        if factor > 1:
            mode = "RGB" if im.mode in ("RGB", "YCbCr") else im.mode
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.draft(mode, (max(1, im.width // factor), max(1, im.height // factor)))
    per_pixel = _MODE_BYTES.get(im.mode, 4)
    _check_decode(im.width, im.height, per_pixel, prep, source, f"{loaded.fmt} {im.mode}")
    try:
        _load_pixels(im, source)
    except ImageError:
        if loaded.fmt not in _OPENCV_FALLBACK or not cv.opencv_reads(loaded.fmt):
            raise
        bands = max(len(im.getbands()), 3)
        _check_decode(im.width, im.height, bands * 4, prep, source, f"{loaded.fmt}")
        fallback = _open_with_opencv(
            loaded.original, source, prep, loaded.fmt, orientation=loaded.orientation
        )
        loaded.decoder = "opencv"
        return fallback.im
    return im


# -- encoding ----------------------------------------------------------------------------
def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        # optimized Huffman tables: about 20 % fewer bytes for 1 ms
        im.save(buf, "JPEG", quality=quality, optimize=True, progressive=False, subsampling=2)
    else:
        im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _bands(im: Image.Image) -> tuple[Image.Image, float]:
    """A few full-width bands (about 1/8 of the rows) standing in for the image when
    predicting encoded sizes, and the factor from their bytes to the whole image's."""
    if im.width * im.height <= 400_000 or im.height < 256:
        return im, 1.0
    count = 6
    band = max(16, 16 * round(im.height / 8 / count / 16))
    step = im.height / count
    sample = Image.new(im.mode, (im.width, band * count))
    for i in range(count):
        top = min(im.height - band, int(i * step + (step - band) / 2))
        sample.paste(im.crop((0, top, im.width, top + band)), (0, i * band))
    return sample, im.height / sample.height


@dataclass
class _Fitted:
    data: bytes
    fmt: str
    im: Image.Image
    quality: int | None
    reason: str | None = None


def _pick_quality(sizes: dict[int, float], target: float, q_high: int, q_low: int) -> int:
    """The highest quality whose predicted size fits ``target`` (log-linear in quality)."""
    if sizes[q_high] <= target:
        return q_high
    if sizes[q_low] >= target or q_high == q_low:
        return q_low
    hi, lo = math.log(sizes[q_high]), math.log(sizes[q_low])
    fraction = (math.log(target) - lo) / (hi - lo)
    return max(q_low, min(q_high, int(q_low + fraction * (q_high - q_low))))


def _resized(im: Image.Image, long_side: int) -> Image.Image:
    if max(im.size) <= long_side:
        return im
    factor = long_side / max(im.size)
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return im.resize(size, _RESAMPLE, reducing_gap=2.0)


def _shrunk_side(im: Image.Image, floor: int, target: float, size: float) -> int | None:
    """The long side that should bring ``size`` bytes to ``target`` (bytes grow about with the
    pixel count), never below ``floor``; None when the step is under ``_MIN_SHRINK``.

    A small step is not worth it: the resample costs as much as the JPEG decode, and a page
    photographed to fill most of the frame would drop below 150 dpi (a 12 MP photo decoded
    at 1/2 scale is 2016 px long: its page keeps about 150 dpi; at 1750 px it would not)."""
    long = max(im.size)
    side = max(floor, int(long * math.sqrt(target / size)))
    return side if side <= _MIN_SHRINK * long else None


def _fit(im: Image.Image, floor: int, prep: ImagePrep) -> _Fitted:
    """Encode about once: JPEG quality and JPEG-vs-PNG predicted from bands of the image;
    shrink towards ``floor`` only when even the lowest quality misses the target."""
    if prep.lossless:
        return _Fitted(_encode(im, "PNG", 0), "PNG", im, None)
    target = prep.target_bytes
    q_high, q_low = prep.jpeg_quality, prep.min_jpeg_quality
    sample, ratio = _bands(im)
    sizes = {q: len(_encode(sample, "JPEG", q)) * ratio for q in {q_high, q_low}}
    quality = _pick_quality(sizes, 0.95 * target, q_high, q_low)
    if prep.allow_png and _few_colours(im):
        # lossless wins when it fits the target or is no bigger than the JPEG we would send
        png = len(_encode(sample, "PNG", 0)) * ratio
        jpeg = min(sizes[q_high], max(0.95 * target, sizes[q_low]))
        if png <= max(0.95 * target, jpeg):
            data = _encode(im, "PNG", 0)
            shrink = _shrunk_side(im, floor, target, len(data))
            if len(data) > target and shrink is not None:
                smaller = _resized(im, shrink)
                retry = _encode(smaller, "PNG", 0)
                if len(retry) < len(data):  # resampling adds grays: it may not pay
                    return _Fitted(retry, "PNG", smaller, None)
            return _Fitted(data, "PNG", im, None)
    current = im
    shrink = _shrunk_side(im, floor, 0.95 * target, sizes[q_low])
    if sizes[q_low] > target and shrink is not None:
        # even the lowest quality misses: shrink (bytes grow about with the pixel count)
        current = _resized(im, shrink)
        quality = q_low
    data = _encode(current, "JPEG", quality)
    for _ in range(2):  # the prediction missed: correct from the real size
        if len(data) <= target * 1.05:
            break
        if quality > q_low:
            sizes = {quality: float(len(data)), q_low: sizes[q_low] * len(data) / sizes[quality]}
            quality = _pick_quality(sizes, 0.95 * target, quality, q_low)
        elif (shrink := _shrunk_side(current, floor, 0.95 * target, len(data))) is not None:
            current = _resized(current, shrink)
        else:
            break
        data = _encode(current, "JPEG", quality)
    return _Fitted(data, "JPEG", current, quality)


def _over_target(fitted: _Fitted, floor: int, prep: ImagePrep) -> str | None:
    size = len(fitted.data)
    if size <= prep.target_bytes * 1.05:
        return None
    w, h = fitted.im.size
    long = max(w, h)
    how = f"JPEG quality {fitted.quality}" if fitted.fmt == "JPEG" else "lossless PNG"
    if long * _MIN_SHRINK > floor:
        why = "it did not compress further"
    elif floor > prep.min_side:
        why = f"the short side stays >= min_short_side={prep.min_short_side} px"
    elif long < prep.min_side:
        why = f"it is already smaller than min_side={prep.min_side} px, so it is not shrunk"
    else:
        why = (
            f"the long side stays >= min_side={prep.min_side} px (about 150 dpi on an A4 "
            "page; a step of less than 15 % towards it is not taken) so small print stays "
            "legible"
        )
    return f"{size:,} bytes > target_bytes={prep.target_bytes:,}: kept {w}x{h} px at {how}; {why}"


# -- the pipeline --------------------------------------------------------------------------
def _load(image: Any, source: str, prep: ImagePrep) -> _Loaded:
    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, prep, source)
        orientation = _orientation(image, None, source) if prep.exif else 1
        return _Loaded(im=image, orientation=orientation)
    if _is_array(image):
        return _Loaded(im=from_array(image, source, prep.max_pixels))
    original, filename = read_input(image, source, max_bytes=prep.max_file_bytes)
    loaded = _open_bytes(original, source, prep)
    loaded.filename = filename
    if loaded.decoder == "pillow" and prep.exif:
        loaded.orientation = _orientation(loaded.im, original, source)
    return loaded


def prepare_image(
    image: Any,
    *,
    crop: tuple[float, float, float, float] | None = None,
    prep: ImagePrep | None = None,
) -> PreparedImage:
    """Turn a local image (path, bytes, file object, PIL image, numpy array) into upload bytes.

    Applies EXIF orientation, crops ``crop=(x, y, w, h)`` given in upright pixels (clipped to
    the image, see ``clip_crop``), downscales and encodes to about ``prep.target_bytes``
    without going below the legibility floors. Small, upright, uncropped images in a format
    the API reads are returned unchanged (same bytes, same sha256). ``prep=None`` uses
    defaults. Every unusable input raises ``ImageError`` naming it and the fix.

    >>> from PIL import Image
    >>> p = prepare_image(Image.new("RGB", (40, 20), "white"))
    >>> (p.width, p.height, p.content_type in ("image/png", "image/jpeg"))
    (40, 20, True)
    """
    if prep is None:
        prep = ImagePrep()
    elif not isinstance(prep, ImagePrep):
        raise ConfigurationError(f"prep must be an ImagePrep, got {type(prep).__name__}.")
    if isinstance(image, PreparedImage):
        return image
    if is_remote(image):
        raise ImageError(
            f"{describe_source(image)} is a URL or data URI: it is sent as JSON src, not prepared "
            "locally.",
            source=describe_source(image),
        )
    source = describe_source(image)
    wanted = check_crop(crop, source) if crop is not None else None
    loaded = _load(image, source, prep)
    try:
        return _prepare(loaded, wanted, prep, source)
    except MemoryError as exc:
        raise ImageError(
            f"Out of memory preparing {source}. Fix: downscale it first, or lower "
            "ImagePrep(max_decode_bytes=...) so such files are refused up front.",
            source=source,
        ) from exc


def _prepare(
    loaded: _Loaded,
    wanted: tuple[float, float, float, float] | None,
    prep: ImagePrep,
    source: str,
) -> PreparedImage:
    im = loaded.im
    original = loaded.original
    orientation = loaded.orientation
    raw_w, raw_h = im.size
    upright_w, upright_h = _upright_size(raw_w, raw_h, orientation)
    box = clip_crop(wanted, upright_w, upright_h, source=source) if wanted else None

    # Already fine as it is: send the very same bytes (once we know they decode).
    if (
        original is not None
        and box is None
        and loaded.decoder == "pillow"
        and loaded.fmt in API_FORMATS
        and im.mode in _PASS_MODES
        and orientation == 1
        and len(original) <= prep.target_bytes
        and max(im.width, im.height) <= prep.max_side
        and getattr(im, "n_frames", 1) == 1
    ):
        _check_decode(
            im.width,
            im.height,
            _MODE_BYTES.get(im.mode, 4),
            prep,
            source,
            f"{loaded.fmt} {im.mode}",
        )
        _load_pixels(im, source)
        if not _has_transparency(im):
            fmt = loaded.fmt
            assert fmt is not None
            return PreparedImage(
                data=original,
                content_type=_CONTENT_TYPES[fmt],
                filename=f"{_stem(loaded.filename)}{_EXTENSIONS[fmt]}",
                sha256=_sha256(original),
                source=source,
                width=im.width,
                height=im.height,
                original_bytes=len(original),
                unchanged=True,
            )

    region_w, region_h = (box[2], box[3]) if box else (upright_w, upright_h)
    region_long = max(region_w, region_h)
    goal, floor = _plan(region_w, region_h, prep, source)
    raw_box = _box_to_raw(box, orientation, raw_w, raw_h) if box else (0, 0, raw_w, raw_h)

    im = _decode(loaded, region_long, goal, floor, prep, source)
    if getattr(im, "n_frames", 1) > 1 and original is not None:
        im.seek(0)  # animated GIF / multi-page TIFF: the first frame
    # the decoded size may be smaller than the header's (JPEG draft)
    fx, fy = im.width / raw_w, im.height / raw_h
    im = normalize_mode(im)
    im = _flatten_alpha(im)
    if not prep.lossless and im.mode != "L" and _is_gray(im):
        im = im.convert("L")

    # crop and downscale in one step: integer reduce when it lands within the plan
    x0, y0 = math.floor(raw_box[0] * fx), math.floor(raw_box[1] * fy)
    x1 = min(im.width, math.ceil(raw_box[2] * fx))
    y1 = min(im.height, math.ceil(raw_box[3] * fy))
    decoded_box = (x0, y0, max(x0 + 1, x1), max(y0 + 1, y1))
    box_w, box_h = decoded_box[2] - x0, decoded_box[3] - y0
    box_long = max(box_w, box_h)
    if box_long > goal:
        factor = math.ceil(box_long / goal)
        if box_long / factor >= floor and factor > 1:
            im = im.reduce(factor, box=decoded_box)
        else:
            k = goal / box_long
            size = (max(1, round(box_w * k)), max(1, round(box_h * k)))
            im = im.resize(size, _RESAMPLE, box=decoded_box, reducing_gap=2.0)
    elif decoded_box != (0, 0, im.width, im.height):
        im = im.crop(decoded_box)
    if orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[orientation])

    fitted = _fit(im, floor, prep)
    reason = _over_target(fitted, floor, prep)
    if reason:
        _log.debug("image %s: %s", source, reason)
    out = fitted.im
    is_jpeg = fitted.fmt == "JPEG"
    return PreparedImage(
        data=fitted.data,
        content_type="image/jpeg" if is_jpeg else "image/png",
        filename=f"{_stem(loaded.filename)}{'.jpg' if is_jpeg else '.png'}",
        sha256=_sha256(fitted.data),
        source=source,
        width=out.width,
        height=out.height,
        original_bytes=len(original) if original is not None else None,
        scale=round(max(out.size) / region_long, 4),
        over_target_reason=reason,
        quality=fitted.quality,
        decoder=loaded.decoder,
    )


_LOSSLESS = ImagePrep(
    target_bytes=1 << 62,
    max_side=1 << 30,
    min_side=1 << 30,
    max_long_side=1 << 30,
    max_decode_bytes=1 << 40,
    lossless=True,
)


def raw_image(
    image: Any,
    *,
    crop: tuple[float, float, float, float] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> PreparedImage:
    """Upload bytes without preparation (``prepare=False``): files as they are.

    Pixels without a file (PIL, numpy) are encoded as lossless PNG; ``crop`` still applies
    (losslessly, in upright pixels). Files are still read with the ``max_file_bytes`` cap.
    """
    if isinstance(image, PreparedImage):
        return image
    if crop is not None or isinstance(image, Image.Image) or _is_array(image):
        return prepare_image(image, crop=crop, prep=_LOSSLESS)
    source = describe_source(image)
    if is_remote(image):
        raise ImageError(
            f"{source} is a URL or data URI: it is sent as JSON src, not read locally.",
            source=source,
        )
    data, filename = read_input(image, source, max_bytes=max_file_bytes)
    if not data:
        raise ImageError(f"Image {source} is empty (0 bytes).", source=source)
    fmt = None
    width = height = 0
    content_type, ext = "application/octet-stream", ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        fmt, (width, height) = im.format, im.size
        content_type = _CONTENT_TYPES.get(fmt or "", content_type)
        ext = _EXTENSIONS.get(fmt or "", "")
    except Exception:  # the API may read what Pillow cannot; let it decide
        cv_fmt = cv.sniff(data)
        if cv_fmt is not None:
            content_type, ext = cv.content_type(cv_fmt), cv.extension(cv_fmt)
            size = cv.header(data, cv_fmt)
            if size is not None:
                width, height = size[0], size[1]
    return PreparedImage(
        data=data,
        content_type=content_type,
        filename=filename or f"image{ext}",
        sha256=_sha256(data),
        source=source,
        width=width,
        height=height,
        original_bytes=len(data),
        unchanged=True,
    )
