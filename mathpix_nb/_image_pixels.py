"""Pixels in, 8-bit L / RGB / RGBA out: numpy arrays, every PIL mode, HDR tone mapping, crops.

Everything here raises ``ImageError`` (a ``ValueError``) naming the input and the fix for what
it cannot use: empty images, object/str/complex/datetime arrays, NaN or infinite floats, shapes
that are not an image. Pillow alone handles every PIL mode; numpy is needed only for numpy input
and HDR tone mapping (which the OpenCV formats bring with them anyway).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageChops

from ._exceptions import ImageError

__all__ = ["check_crop", "clip_crop", "from_array", "from_u16", "normalize_mode", "tone_map"]

_CROP_FIX = (
    "Fix: pass crop=(x, y, width, height) as four finite numbers in pixels of the upright "
    "image, width and height > 0, e.g. crop=(10, 20, 300, 80)."
)


# -- crops -------------------------------------------------------------------------------
def check_crop(crop: Any, source: str | None = None) -> tuple[float, float, float, float]:
    """``crop`` as four finite floats ``(x, y, width, height)`` with a positive size.

    Raises ``ImageError`` naming ``crop`` and the fix for anything else (strings, wrong
    length, NaN, infinities, booleans, zero or negative sizes).
    """
    where = f" for {source}" if source else ""
    if isinstance(crop, str | bytes | bytearray | Mapping) or not hasattr(crop, "__iter__"):
        raise ImageError(f"crop={crop!r}{where} is not a box. {_CROP_FIX}", source=source)
    try:
        values = list(crop)
    except Exception as exc:  # a broken iterable
        raise ImageError(f"crop={crop!r}{where} is not a box. {_CROP_FIX}", source=source) from exc
    if len(values) != 4:
        raise ImageError(
            f"crop={crop!r}{where} has {len(values)} values, not 4. {_CROP_FIX}", source=source
        )
    out: list[float] = []
    for name, value in zip(("x", "y", "width", "height"), values, strict=True):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            # numpy scalars are numbers.Real; strings, None, complex are not
            raise ImageError(
                f"crop={crop!r}{where}: {name} is {type(value).__name__} {value!r}, not a "
                f"number. {_CROP_FIX}",
                source=source,
            )
        number = float(value)
        if not math.isfinite(number):
            raise ImageError(
                f"crop={crop!r}{where}: {name} is {number}, not a finite number. {_CROP_FIX}",
                source=source,
            )
        out.append(number)
    x, y, w, h = out
    if w <= 0 or h <= 0:
        raise ImageError(
            f"crop={crop!r}{where}: width and height must be > 0 (got {w:g} x {h:g}). {_CROP_FIX}",
            source=source,
        )
    return x, y, w, h


def _snap(value: float, up: bool) -> int:
    near = round(value)
    if abs(value - near) < 1e-6:
        return int(near)
    return math.ceil(value) if up else math.floor(value)


def clip_crop(
    crop: Any, width: int, height: int, *, source: str | None = None
) -> tuple[int, int, int, int]:
    """The pixel box ``(x, y, w, h)`` of ``crop`` inside a ``width`` x ``height`` image.

    The one crop rule of every surface (client, bulk, panel): ``crop=(x, y, width, height)`` is
    in pixels of the upright image; fractional edges are widened to whole pixels (the box
    covers every pixel it touches); a box partly outside the image is **clipped** to it; a box
    entirely outside (or a zero-size one) raises ``ImageError``, as do malformed crops
    (see ``check_crop``).

    >>> clip_crop((-10, 5, 50, 500), 100, 80)
    (0, 5, 40, 75)
    """
    x, y, w, h = check_crop(crop, source)
    x0, y0 = max(0, _snap(x, up=False)), max(0, _snap(y, up=False))
    x1, y1 = min(width, _snap(x + w, up=True)), min(height, _snap(y + h, up=True))
    if x1 <= x0 or y1 <= y0:
        name = f" {source}" if source else ""
        raise ImageError(
            f"crop={tuple(crop)!r} lies outside the upright image{name} ({width}x{height}). "
            "Fix: give (x, y, width, height) in pixels of the upright image (EXIF applied).",
            source=source,
        )
    return x0, y0, x1 - x0, y1 - y0


# -- numpy -------------------------------------------------------------------------------
_KIND_NAMES = {
    "O": "object",
    "U": "str",
    "S": "bytes",
    "c": "complex",
    "M": "datetime",
    "m": "timedelta",
    "V": "structured (void)",
}


def check_array_size(shape: tuple[int, ...], source: str) -> None:
    """Refuse empty arrays (0 x N) with a clear message."""
    if any(int(n) == 0 for n in shape[:2]):
        raise ImageError(
            f"numpy array {source} is empty ({'x'.join(map(str, shape))}): nothing to OCR. "
            "Fix: check how the array was made (an empty crop or slice?).",
            source=source,
        )


def from_array(array: Any, source: str, max_pixels: int) -> Image.Image:
    """A numpy array (or anything with ``__array_interface__``) as an 8-bit PIL image.

    Shapes: (H, W), (H, W, 1) gray; (H, W, 2) gray + alpha; (H, W, 3) RGB; (H, W, 4) RGBA.
    dtypes: bool; uint8; uint16 (full 16-bit range, or 0..255 as is); other integers (0..255
    as is, else stretched from their min..max); floats (0..1 as is x255, 0..255 as is, else
    stretched).
    """
    import numpy as np

    try:
        arr = np.asarray(array)
    except Exception as exc:
        raise ImageError(
            f"Cannot read {source} as a numpy array ({type(exc).__name__}: {exc}).",
            source=source,
        ) from exc
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise ImageError(
            f"numpy array {source} has dtype {arr.dtype} ({_KIND_NAMES.get(kind, kind)}), "
            "which holds no pixels. Fix: pass numbers: uint8 (0..255), uint16, bool, or "
            "floats in 0..1, e.g. arr.astype(np.uint8).",
            source=source,
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4:
            hint = " It looks channel-first: use arr.transpose(1, 2, 0)."
        elif arr.ndim == 4 and arr.shape[0] == 1:
            hint = " It looks like a batch of one: use arr[0]."
        raise ImageError(
            f"Cannot use numpy array {source} as an image: expected shape (H, W), (H, W, 1), "
            f"(H, W, 2), (H, W, 3) or (H, W, 4), got {arr.shape}.{hint}",
            source=source,
        )
    check_array_size(arr.shape, source)
    height, width = int(arr.shape[0]), int(arr.shape[1])
    if width * height > max_pixels:
        raise ImageError(
            f"numpy array {source} has {width}x{height} = {width * height:,} pixels, more "
            f"than the limit of {max_pixels:,}. Fix: downscale it first, or raise "
            "ImagePrep(max_pixels=...).",
            source=source,
        )
    if kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif kind == "f":
        if not np.isfinite(arr).all():
            raise ImageError(
                f"numpy array {source} contains NaN or infinite values. Fix: replace them "
                "first, e.g. np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0).",
                source=source,
            )
        arr = _stretch(arr.astype(np.float32), float(arr.min()), float(arr.max()), unit=True)
    elif kind == "u" and arr.dtype.itemsize == 2:
        arr = from_u16(arr)
    elif arr.dtype != np.uint8:
        arr = _stretch(arr, float(arr.min()), float(arr.max()), unit=False)
    return Image.fromarray(np.ascontiguousarray(arr))


def from_u16(arr: Any) -> Any:
    """16-bit samples as 8-bit: the full 0..65535 range, except 8-bit data stored in 16 bits
    (nothing above 255), which is kept as is instead of turning black. (Any byte order.)"""
    import numpy as np

    if int(arr.max()) <= 255:
        return arr.astype(np.uint8)
    return (arr.astype(np.uint16) >> 8).astype(np.uint8)


def _stretch(arr: Any, low: float, high: float, *, unit: bool) -> Any:
    """uint8 pixels: 0..1 floats (``unit``) x255, 0..255 as is, anything else min..max."""
    import numpy as np

    if unit and low >= 0.0 and high <= 1.0:
        out = arr * 255.0 + 0.5
    elif low >= 0.0 and high <= 255.0:
        out = arr.astype(np.float32) if not unit else arr
    else:
        span = high - low or 1.0
        out = (arr.astype(np.float32) - low) * (255.0 / span) + 0.5
    return np.clip(out, 0, 255).astype(np.uint8)


def tone_map(array: Any) -> Any:
    """Linear HDR values (EXR, Radiance HDR, PFM; float, any range) as 8-bit sRGB.

    Exposure puts the 99.5th percentile of the brightness at white (so a few hot pixels do
    not turn a page black), then the sRGB curve; NaN and -inf become 0, +inf becomes white.
    """
    import numpy as np

    arr = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        top = float(arr[finite].max()) if finite.any() else 1.0
        arr = np.nan_to_num(arr, nan=0.0, posinf=max(top, 1e-6), neginf=0.0)
    arr = np.maximum(arr, 0.0)
    light = arr if arr.ndim == 2 else arr[..., : min(3, arr.shape[2])].mean(axis=2)
    step = max(1, light.size // 250_000)
    sample = light.reshape(-1)[::step]
    white = float(np.percentile(sample, 99.5)) if sample.size else 1.0
    if white <= 0.0:
        white = float(light.max()) or 1.0
    x = np.clip(arr / white, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return (srgb * 255.0 + 0.5).astype(np.uint8)


# -- PIL modes ---------------------------------------------------------------------------
def _extrema(band: Image.Image) -> tuple[float, float]:
    low, high = band.getextrema()
    return float(low), float(high)  # type: ignore[arg-type]


def _wide_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer and float single-band images as 8-bit gray, with Pillow alone."""
    mode = im.mode
    wide = im.convert("F") if mode != "F" else im
    low, high = _extrema(wide)
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0 if mode == "F" else 65535.0
    if mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 255.0, 0.0
    elif low >= 0.0 and high <= 255.0:  # 8-bit data in a wide mode: as is, not black
        scale, offset = 1.0, 0.0
    elif mode.startswith("I;16") or (mode == "I" and low >= 0.0 and high <= 65535.0):
        scale, offset = 255.0 / 65535.0, 0.0  # 16-bit PNGs open as mode I
    else:
        scale, offset = 255.0 / ((high - low) or 1.0), low
    return wide.point(lambda v: (v - offset) * scale).convert("L")


def normalize_mode(im: Image.Image) -> Image.Image:
    """8-bit ``L``, ``RGB`` or ``RGBA`` from every PIL mode (1, L, LA, La, P, PA, RGB, RGBA,
    RGBa, RGBX, CMYK, YCbCr, LAB, HSV, I, I;16*, F)."""
    mode = im.mode
    if mode in ("L", "RGB", "RGBA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "LA":
        return im.convert("RGBA")
    if mode == "La":  # premultiplied: over white, gray = L + (255 - a)
        gray, alpha = im.split()
        return ImageChops.add(gray, ImageChops.invert(alpha)).convert("L")
    if mode in ("P", "PA"):
        return im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_to_l(im)
    if mode == "LAB":
        return _lab_to_rgb(im)
    if mode in ("CMYK", "YCbCr", "HSV", "RGBX"):
        return im.convert("RGB")
    if mode in ("RGBa",):
        return im.convert("RGBA")
    try:
        return im.convert("RGBA" if "A" in mode else "RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"Cannot convert PIL mode {mode} to RGB. Fix: convert the image to 'RGB' first.",
        ) from exc


def _lab_to_rgb(im: Image.Image) -> Image.Image:
    """CIE L*a*b* to sRGB with LittleCMS; without it, the lightness band as gray (which is
    what OCR reads anyway)."""
    try:
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        out = ImageCms.applyTransform(im, transform)
        if out is not None:
            return out
    except Exception:  # no littlecms in this Pillow build
        pass
    return im.getchannel("L")
