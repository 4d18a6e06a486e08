"""Image input normalisation and preparation before upload.

Mathpix ignores EXIF orientation and its answer time grows with the upload size, so by
default we turn every local image upright, crop it if asked (in upright pixels), downscale
and encode it (JPEG, or PNG when that is smaller, e.g. for line art) to about 100 KB. An
image that is already small, upright, uncropped and in a format the API reads is sent
byte-for-byte unchanged. Everything here is I/O-free except reading the input file.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ._exceptions import ImageError

__all__ = [
    "ImagePrep",
    "PreparedImage",
    "describe_source",
    "is_remote",
    "prepare_image",
]

# Pillow format names of what the API reads (OpenCV's list) and we can pass through as is.
API_FORMATS = {"JPEG", "PNG", "BMP", "DIB", "WEBP", "TIFF", "JPEG2000", "PPM", "SUN"}
# Extensions the API reads that Pillow may not: sent as is, without preparation.
_RAW_EXTENSIONS = {".exr", ".hdr", ".pic", ".pfm", ".sr", ".ras", ".pxm", ".pnm"}
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


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    register_heif_opener()
    return True


_HEIF_AVAILABLE = _register_heif()


@dataclass(frozen=True)
class ImagePrep:
    """How local images are prepared before upload.

    Args:
        target_bytes: aim for uploads of about this size (Mathpix recommends < 100 KB).
        max_side: never send a side longer than this many pixels.
        min_side: do not shrink the long side below this to reach the byte target
            (small text must stay readable; the target is a goal, not a hard limit).
        jpeg_quality: first JPEG quality tried; lowered down to ``min_jpeg_quality`` if needed.
        allow_png: also try PNG and keep it when smaller (line art, screenshots).
        exif: apply the EXIF orientation (the API ignores it).
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).
        lossless: encode PNG only, never downscale (used by ``prepare=False`` with a crop).
    """

    target_bytes: int = 100_000
    max_side: int = 2048
    min_side: int = 1000
    jpeg_quality: int = 85
    min_jpeg_quality: int = 60
    allow_png: bool = True
    exif: bool = True
    max_pixels: int = 180_000_000
    lossless: bool = False


@dataclass(frozen=True, repr=False)
class PreparedImage:
    """Image bytes ready to upload, with where they came from."""

    data: bytes
    content_type: str
    filename: str
    sha256: str
    source: str
    width: int
    height: int
    original_bytes: int | None = None
    unchanged: bool = field(default=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"PreparedImage(source={self.source!r}, {self.width}x{self.height}, "
            f"{self.content_type}, {len(self.data)} bytes, original_bytes={self.original_bytes})"
        )


def is_remote(image: Any) -> bool:
    """True for inputs sent as JSON ``src``: http(s) URLs and ``data:`` URIs."""
    return isinstance(image, str) and image.lstrip().lower().startswith(
        ("http://", "https://", "data:")
    )


def describe_source(image: Any) -> str:
    """A short, secret-free name for an input, used in messages."""
    if isinstance(image, PreparedImage):
        return image.source
    if isinstance(image, str):
        if image.startswith("data:"):
            return image[: image.find(",") if "," in image else 30][:40] + ",…"
        if image.startswith(("http://", "https://")):
            from ._config import safe_url

            return safe_url(image) or image
        return image
    if isinstance(image, os.PathLike):
        return str(os.fspath(image))
    if isinstance(image, bytes | bytearray | memoryview):
        return f"<{len(image)} bytes>"
    if isinstance(image, Image.Image):
        return f"<PIL image {image.width}x{image.height} {image.mode}>"
    shape = getattr(image, "shape", None)
    if shape is not None and hasattr(image, "dtype"):
        return f"<numpy array {'x'.join(map(str, shape))} {image.dtype}>"
    name = getattr(image, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(image).__name__}>"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_input(image: Any, source: str) -> tuple[bytes, str | None]:
    """Bytes and file name (if any) of a path, bytes or binary file object."""
    if isinstance(image, str | os.PathLike):
        path = Path(os.fspath(image)).expanduser()
        if not path.exists():
            raise ImageError(
                f"Image file not found: {source}. Fix: check the path (relative paths are "
                f"resolved from {os.getcwd()}).",
                source=source,
            )
        if path.is_dir():
            raise ImageError(f"{source} is a directory, not an image file.", source=source)
        try:
            return path.read_bytes(), path.name
        except OSError as exc:
            raise ImageError(f"Cannot read image file {source}: {exc}", source=source) from exc
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image), None
    read = getattr(image, "read", None)
    if callable(read):
        data = read()
        if isinstance(data, str):
            raise ImageError(
                f"{source} is a text-mode file; open images with open(path, 'rb').", source=source
            )
        name = getattr(image, "name", None)
        return bytes(data), os.path.basename(name) if isinstance(name, str) else None
    raise ImageError(
        f"Unsupported image input {source}. Pass a file path, pathlib.Path, bytes, a binary file "
        "object, a PIL image, a numpy array, an http(s) URL or a data: URI.",
        source=source,
    )


def _from_numpy(array: Any, source: str) -> Image.Image:
    import numpy as np

    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"Cannot use numpy array {source} as an image: expected shape (H, W), (H, W, 3) "
            "or (H, W, 4).",
            source=source,
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        # floats are taken as 0..1 (the scikit-image convention) unless they exceed it
        scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
    elif arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def _check_pixels(width: int, height: int, prep: ImagePrep, source: str) -> None:
    if width * height > prep.max_pixels:
        raise ImageError(
            f"Image {source} has {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {prep.max_pixels:,} (a guard against decompression bombs). Fix: crop or "
            "downscale it first, or raise ImagePrep(max_pixels=...) if you trust the file.",
            source=source,
        )


def _open(data: bytes, source: str, prep: ImagePrep) -> Image.Image:
    if not data:
        raise ImageError(f"Image {source} is empty (0 bytes).", source=source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"Image {source} is too large to decode safely ({exc}). Fix: downscale it first.",
            source=source,
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        head = data[:16]
        if head.startswith(b"%PDF"):
            fix = "it is a PDF: use client.pdf(...) for documents"
        elif head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypheif", b"ftyphevc"):
            fix = (
                "the HEIC/HEIF file could not be decoded; re-export it as JPEG"
                if _HEIF_AVAILABLE
                else "it is HEIC/HEIF: `pip install pillow-heif` so it can be converted"
            )
        else:
            fix = "convert it to PNG or JPEG"
        raise ImageError(
            f"Cannot read {source} as an image (not a format Pillow or the Mathpix API reads). "
            f"Fix: {fix}.",
            source=source,
        ) from exc
    _check_pixels(im.width, im.height, prep, source)
    return im


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # malformed EXIF must not stop OCR
        return 1


def _upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _normalize_mode(im: Image.Image) -> Image.Image:
    """8-bit L / RGB / RGBA from whatever came in (CMYK, 16-bit, float, palette, 1-bit)."""
    mode = im.mode
    if mode in ("L", "RGB", "RGBA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "LA":
        return im.convert("RGBA")
    if mode in ("P", "PA"):
        return im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit and float pixels -> 8-bit gray, without numpy (Pillow alone)
        wide = im.convert("F")
        _, hi = _extrema(wide)
        if mode.startswith("I;16"):
            scale = 255.0 / 65535.0
        elif hi > 255:
            scale = 255.0 / hi
        elif mode == "F" and 0 < hi <= 1.0:
            scale = 255.0
        else:
            scale = 1.0
        return wide.point(lambda v: v * scale).convert("L")
    if mode == "CMYK":
        return im.convert("RGB")
    return im.convert("RGBA" if "A" in mode else "RGB")


def _extrema(band: Image.Image) -> tuple[float, float]:
    """(min, max) of a single-band image."""
    low, high = band.getextrema()
    return float(low), float(high)  # type: ignore[arg-type]


def _has_transparency(im: Image.Image) -> bool:
    """True when some pixel is see-through: the API (OpenCV) would drop alpha and show
    whatever colour hides under it, often black, so such images are flattened onto white."""
    if "transparency" in im.info:
        return True
    if im.mode in ("RGBA", "LA", "PA"):
        low, _ = _extrema(im.getchannel("A"))
        return low < 255
    return False


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite transparency onto white (OCR engines read dark-on-light best)."""
    if im.mode != "RGBA":
        return im
    if _extrema(im.getchannel("A"))[0] == 255:  # fully opaque
        return im.convert("RGB")
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, mask=im.getchannel("A"))
    return background


def _is_gray(im: Image.Image) -> bool:
    if im.mode == "L":
        return True
    small = im.convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
    r, g, b = small.split()
    from PIL import ImageChops

    diff = _extrema(ImageChops.difference(r, g))[1] + _extrema(ImageChops.difference(g, b))[1]
    return diff <= 12


def _looks_like_line_art(im: Image.Image) -> bool:
    """Few distinct colours: screenshots, rendered text, diagrams (PNG may beat JPEG).

    Sampled without smoothing, so camera noise in photos keeps the colour count high.
    """
    sample = im.resize((min(256, im.width), min(256, im.height)), Image.Resampling.NEAREST)
    return sample.convert("RGB").getcolors(maxcolors=2048) is not None


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    else:
        im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _validate_crop(crop: Any, width: int, height: int, source: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (round(float(v)) for v in crop)
    except (TypeError, ValueError) as exc:
        raise ImageError(
            f"crop must be (x, y, width, height) in pixels, got {crop!r} for {source}.",
            source=source,
        ) from exc
    x, y = max(0, x), max(0, y)
    w, h = min(w, width - x), min(h, height - y)
    if w <= 0 or h <= 0:
        raise ImageError(
            f"crop {tuple(crop)!r} lies outside the upright image {source} ({width}x{height}). "
            "Fix: give (x, y, width, height) in pixels of the upright image.",
            source=source,
        )
    return x, y, w, h


def _stem(name: str | None) -> str:
    if not name:
        return "image"
    return Path(name).stem or "image"


def prepare_image(
    image: Any,
    *,
    crop: tuple[float, float, float, float] | None = None,
    prep: ImagePrep | None = None,
) -> PreparedImage:
    """Turn a local image (path, bytes, file object, PIL image, numpy array) into upload bytes.

    Applies EXIF orientation, crops ``crop=(x, y, w, h)`` given in upright pixels, downscales
    and encodes to about ``prep.target_bytes``. Small, upright, uncropped images in a format the
    API reads are returned unchanged (same bytes, same sha256). ``prep=None`` uses defaults.

    >>> from PIL import Image
    >>> p = prepare_image(Image.new("RGB", (40, 20), "white"))
    >>> (p.width, p.height, p.content_type in ("image/png", "image/jpeg"))
    (40, 20, True)
    """
    prep = prep or ImagePrep()
    if isinstance(image, PreparedImage):
        return image
    if is_remote(image):
        raise ImageError(
            f"{describe_source(image)} is a URL or data URI: it is sent as JSON src, not prepared "
            "locally.",
            source=describe_source(image),
        )
    source = describe_source(image)

    original: bytes | None = None
    filename: str | None = None
    if isinstance(image, Image.Image):
        im = image
        _check_pixels(im.width, im.height, prep, source)
    elif hasattr(image, "__array_interface__") or (
        hasattr(image, "shape") and hasattr(image, "dtype")
    ):
        im = _from_numpy(image, source)
        _check_pixels(im.width, im.height, prep, source)
    else:
        original, filename = _read_input(image, source)
        ext = Path(filename or "").suffix.lower()
        if ext in _RAW_EXTENSIONS:
            try:
                im = _open(original, source, prep)
            except ImageError:
                if crop is not None:
                    raise
                # The API reads it (OpenCV) though Pillow cannot: send it as it is.
                return PreparedImage(
                    data=original,
                    content_type="application/octet-stream",
                    filename=filename or f"image{ext}",
                    sha256=_sha256(original),
                    source=source,
                    width=0,
                    height=0,
                    original_bytes=len(original),
                    unchanged=True,
                )
        else:
            im = _open(original, source, prep)

    fmt = im.format if original is not None else None
    orientation = _orientation(im) if prep.exif else 1
    upright_w, upright_h = _upright_size(im.width, im.height, orientation)

    # Already fine as it is: send the very same bytes.
    if (
        original is not None
        and crop is None
        and fmt in API_FORMATS
        and im.mode in _PASS_MODES
        and orientation == 1
        and len(original) <= prep.target_bytes
        and max(im.width, im.height) <= prep.max_side
        and getattr(im, "n_frames", 1) == 1
        and not _has_transparency(im)  # last: it decodes the (small) image
    ):
        return PreparedImage(
            data=original,
            content_type=_CONTENT_TYPES[fmt],
            filename=f"{_stem(filename)}{_EXTENSIONS[fmt]}",
            sha256=_sha256(original),
            source=source,
            width=im.width,
            height=im.height,
            original_bytes=len(original),
            unchanged=True,
        )

    box = _validate_crop(crop, upright_w, upright_h, source) if crop is not None else None
    region_w, region_h = (box[2], box[3]) if box else (upright_w, upright_h)
    scale = min(1.0, prep.max_side / max(region_w, region_h))

    # Big JPEGs: let libjpeg decode at 1/2, 1/4 or 1/8 scale (much faster, less memory).
    # The file's own bytes per pixel predict how far the byte target will shrink it.
    draft_scale = scale
    if original is not None and not prep.lossless:
        region_bytes = len(original) * (region_w * region_h) / (upright_w * upright_h)
        # generous (x2): a camera's JPEG holds more bytes per pixel than ours; never too low
        predicted = scale * min(1.0, 2.0 * math.sqrt(prep.target_bytes / max(1.0, region_bytes)))
        draft_scale = max(predicted, min(scale, prep.min_side / max(region_w, region_h)))
    if fmt == "JPEG" and draft_scale <= 0.5:
        requested = (math.ceil(im.width * draft_scale), math.ceil(im.height * draft_scale))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.draft("RGB" if im.mode in ("RGB", "CMYK", "YCbCr") else im.mode, requested)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"Cannot decode {source}: {exc}. Fix: check that the file is a complete image.",
            source=source,
        ) from exc
    if original is not None and getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF / multi-page TIFF: the first frame (a PIL image: as given)

    # decoded size may be smaller than the header size (draft mode)
    decoded_scale = im.width / (upright_h if orientation in (5, 6, 7, 8) else upright_w)
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    im = _normalize_mode(im)
    if box is not None:
        x, y, w, h = (v * decoded_scale for v in box)
        im = im.crop((round(x), round(y), round(x + w), round(y + h)))
    im = _flatten_alpha(im)
    if not prep.lossless and im.mode != "L" and _is_gray(im):
        im = im.convert("L")

    target_long = max(1, round(max(region_w, region_h) * scale))
    data, out_fmt, im_out = _fit(im, target_long, prep, fmt)
    return PreparedImage(
        data=data,
        content_type="image/jpeg" if out_fmt == "JPEG" else "image/png",
        filename=f"{_stem(filename)}{'.jpg' if out_fmt == 'JPEG' else '.png'}",
        sha256=_sha256(data),
        source=source,
        width=im_out.width,
        height=im_out.height,
        original_bytes=len(original) if original is not None else None,
    )


def _resized(im: Image.Image, long_side: int) -> Image.Image:
    if max(im.size) <= long_side:
        return im
    factor = long_side / max(im.size)
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _fit(
    im: Image.Image, long_side: int, prep: ImagePrep, source_format: str | None
) -> tuple[bytes, str, Image.Image]:
    """Encode at ``long_side``, shrinking (not below min_side) and lowering quality to fit."""
    if prep.lossless:
        current = _resized(im, long_side)
        return _encode(current, "PNG", 0), "PNG", current
    try_png = prep.allow_png and (
        source_format in ("PNG", "GIF", "BMP", "TIFF") or _looks_like_line_art(im)
    )
    floor = min(long_side, prep.min_side)
    quality = prep.jpeg_quality
    ceiling = long_side
    if not try_png and long_side > 640:
        # One cheap probe at a small size predicts the bytes per pixel, so a big photo is
        # resized and encoded about once instead of once per shrinking step.
        probe = _resized(im, 640)
        per_pixel = len(_encode(probe, "JPEG", quality)) / (probe.width * probe.height)
        scale = long_side / max(im.size)
        predicted = per_pixel * im.width * im.height * scale * scale
        if predicted > prep.target_bytes:
            long_side = max(floor, int(long_side * math.sqrt(prep.target_bytes / predicted)))
    grown = False
    while True:
        current = _resized(im, long_side)
        candidates = [(_encode(current, "JPEG", quality), "JPEG")]
        if try_png:
            candidates.append((_encode(current, "PNG", quality), "PNG"))
        data, fmt = min(candidates, key=lambda c: len(c[0]))
        if len(data) <= prep.target_bytes:
            if len(data) < 0.7 * prep.target_bytes and long_side < ceiling and not grown:
                # the probe was pessimistic: use the byte budget for legibility (one try)
                grown = True
                bigger = min(
                    ceiling, int(long_side * math.sqrt(0.9 * prep.target_bytes / len(data)))
                )
                retry = _resized(im, bigger)
                retry_data = _encode(retry, fmt, quality)
                if len(retry_data) <= prep.target_bytes:
                    return retry_data, fmt, retry
            return data, fmt, current
        if long_side > floor:
            # bytes grow roughly with pixel count: shrink by the square root of the excess
            factor = max(0.5, math.sqrt(prep.target_bytes / len(data)) * 0.95)
            long_side = max(floor, int(long_side * factor))
            continue
        if quality > prep.min_jpeg_quality:
            quality = max(prep.min_jpeg_quality, quality - 10)
            try_png = False
            continue
        return data, fmt, current


def raw_image(
    image: Any, *, crop: tuple[float, float, float, float] | None = None
) -> PreparedImage:
    """Upload bytes without preparation (``prepare=False``): files as they are.

    Pixels without a file (PIL, numpy) are encoded as lossless PNG; ``crop`` still applies
    (losslessly, in upright pixels).
    """
    if isinstance(image, PreparedImage):
        return image
    lossless = ImagePrep(target_bytes=1 << 62, max_side=1 << 30, min_side=1 << 30, lossless=True)
    if crop is not None or isinstance(image, Image.Image) or hasattr(image, "__array_interface__"):
        im_prep = prepare_image(image, crop=crop, prep=lossless)
        return im_prep
    source = describe_source(image)
    data, filename = _read_input(image, source)
    fmt = None
    width = height = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        fmt, (width, height) = im.format, im.size
    except Exception:  # the API may read what Pillow cannot; let it decide
        pass
    return PreparedImage(
        data=data,
        content_type=_CONTENT_TYPES.get(fmt or "", "application/octet-stream"),
        filename=filename or f"image{_EXTENSIONS.get(fmt or '', '')}",
        sha256=_sha256(data),
        source=source,
        width=width,
        height=height,
        original_bytes=len(data),
        unchanged=True,
    )
