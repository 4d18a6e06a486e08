"""OCR engines behind the local server.

An engine turns image bytes (or one page of a PDF) into a small result dict; the server
shapes that into Mathpix's response bodies. Write your own by implementing ``Engine``.

Result dict keys (``recognize`` and ``recognize_pdf_page``):
    ``image_width``, ``image_height`` (ints), ``lines`` (list of ``{"text", "confidence",
    "cnt"}`` with ``cnt`` a 4-point polygon in pixels), ``confidence`` (0..1),
    ``confidence_rate`` (0..1), ``version`` (str). Optional: ``latex_styled`` (str),
    ``is_printed`` / ``is_handwritten`` (bools), ``extra`` (dict merged into v3/text bodies).
    No lines means "nothing found" (the server answers ``image_no_content``).
Engines raise ``EngineError(error_id, message)`` for unreadable input.

Optional: ``recognize_strokes(strokes, image, options)`` reads digital ink itself
(``strokes`` = ``{"x": [[...]], "y": [[...]]}``, ``image`` = the ink drawn as a PNG);
engines without it get the drawn image through ``recognize`` (the offline engine does).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from PIL import Image, UnidentifiedImageError

# Engines that use pdfium share this lock: pdfium is not thread-safe.
_PDFIUM_LOCK = threading.Lock()
# Loaded rapidocr models by parameters: [model or None, lock serialising its use].
_MODELS: dict[str, list[Any]] = {}
_MODELS_LOCK = threading.Lock()


class EngineError(Exception):
    """An input the engine cannot read; ``error_id`` is the Mathpix error id to answer with."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


@runtime_checkable
class Engine(Protocol):
    """What the server needs from an OCR engine."""

    name: str
    #: True if calls take long enough to need a worker thread (keeps the server responsive).
    blocking: bool

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        """OCR one image (any format Pillow reads). ``options`` are the request's options."""
        ...

    def pdf_page_count(self, pdf: bytes) -> int:
        """Number of pages of a PDF; raise ``EngineError`` if it cannot be read."""
        ...

    def recognize_pdf_page(
        self, pdf: bytes, page: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """OCR page ``page`` (1-based) of a PDF."""
        ...


def _open_image(data: bytes) -> Image.Image:
    """Decode upload bytes: Pillow first, then OpenCV (``[opencv]`` extra) for what Pillow
    cannot read (OpenEXR, Radiance HDR, PFM, PAM, float TIFF...), as Mathpix reads every
    OpenCV format. Anything else is ``image_decode_error`` (naming the extra when it would
    help)."""
    return _open_image_sized(data)[0]


def _open_image_sized(data: bytes, *, draft: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`_open_image`, and the image's full size. ``draft``: a large JPEG may be decoded
    at 1/8 scale (its DCT scaling: about 8x less CPU), for callers that need no more."""
    size: tuple[int, int] | None = None
    try:
        image = Image.open(io.BytesIO(data))
        size = image.size
        if draft and image.format == "JPEG" and size[0] * size[1] > 1_000_000:
            image.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
        return image, size
    except Image.DecompressionBombError as exc:
        raise EngineError("image_decode_error", "Image too large to decode") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        failure: Exception = exc
    decoded = _decode_with_opencv(data, size)
    if decoded is not None:
        return decoded, decoded.size
    fmt = opencv_format(data)
    hint = ""
    if fmt is not None:
        from .._image_cv import describe, missing_hint

        hint = f"; {describe(fmt)} needs OpenCV: {missing_hint(fmt)}"
    raise EngineError(
        "image_decode_error", f"Cannot decode image data ({failure.__class__.__name__}){hint}"
    ) from failure


def opencv_format(data: bytes) -> str | None:
    """The name of an OpenCV-only format (EXR, HDR, PFM, PAM) these bytes start with."""
    from .._image_cv import sniff

    return sniff(data)


def _decode_with_opencv(data: bytes, size: tuple[int, int] | None) -> Image.Image | None:
    """OpenCV's decode of ``data`` (8-bit, HDR tone-mapped), or None when OpenCV is missing or
    cannot read it, or when the size (from Pillow's or our header parse; unknown sizes are
    not decoded) is above Pillow's decompression-bomb limit."""
    from .. import _image_cv as cv
    from .._exceptions import ImageError

    fmt = cv.sniff(data)
    if not cv.opencv_reads(fmt):
        return None
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
    if fmt is not None:
        parsed = cv.header(data, fmt)
        size = parsed[:2] if parsed else None
    if size is None or size[0] * size[1] > limit:
        return None
    try:
        return cv.decode(data, "upload", fmt)
    except ImageError:
        return None


def _box(x: float, y: float, w: float, h: float) -> list[list[int]]:
    x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _region(
    options: Mapping[str, Any], width: int, height: int
) -> tuple[int, int, int, int] | None:
    region = options.get("region")
    if not isinstance(region, Mapping) or not region:
        return None
    x, y = int(region["top_left_x"]), int(region["top_left_y"])
    w, h = int(region["width"]), int(region["height"])
    x, y = max(0, min(x, width)), max(0, min(y, height))
    return x, y, max(0, min(w, width - x)), max(0, min(h, height - y))


def _open_pdf(pdf: bytes) -> Any:
    try:
        import pypdfium2 as pdfium  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the installed extra
        raise EngineError(
            "pdf_decode_error", "PDF support needs pypdfium2: pip install 'mathpix_nb[offline]'"
        ) from exc
    try:
        return pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EngineError("pdf_encrypted", "PDF is encrypted") from exc
        raise EngineError("pdf_decode_error", "Cannot read the PDF") from exc


def reading_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top to bottom by rows (boxes whose vertical centre falls inside a row's span share
    it), left to right within a row."""
    rows: list[tuple[float, float, list[dict[str, Any]]]] = []
    for line in sorted(lines, key=lambda li: min(p[1] for p in li["cnt"])):
        top = min(p[1] for p in line["cnt"])
        bottom = max(p[1] for p in line["cnt"])
        centre = (top + bottom) / 2
        if rows and rows[-1][0] <= centre <= rows[-1][1]:
            row_top, row_bottom, members = rows[-1]
            rows[-1] = (row_top, max(row_bottom, bottom), [*members, line])
        else:
            rows.append((top, bottom, [line]))
    return [
        line
        for _, _, members in rows
        for line in sorted(members, key=lambda li: min(p[0] for p in li["cnt"]))
    ]


class EchoEngine:
    """Deterministic, fast, no OCR: the text names the image it received.

    ``text`` is ``"echo {W}x{H} sha:{first 12 hex of sha256(bytes)}"``, so a test can tell which
    image a result belongs to. A blank (single-colour) image yields no lines, so the server
    answers ``image_no_content`` as Mathpix does for empty images.
    """

    name = "echo"
    blocking = False
    version = "echo-1"

    def __init__(self, confidence: float = 1.0) -> None:
        self.confidence = confidence

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        sha = hashlib.sha256(image).hexdigest()[:12]
        # blank or not needs no full decode: a large JPEG is read at 1/8 scale (the echo
        # engine stands in for a remote server, whose CPU is not the client's)
        img, (width, height) = _open_image_sized(image, draft=True)
        with img:
            extrema = img.convert("L").getextrema()
        blank = extrema[0] == extrema[1]
        text = f"echo {width}x{height} sha:{sha}"
        region = _region(options, width, height)
        if region:
            text += " region:{},{},{},{}".format(*region)
        lines = (
            []
            if blank
            else [{"text": text, "confidence": self.confidence, "cnt": _box(0, 0, width, height)}]
        )
        return {
            "image_width": width,
            "image_height": height,
            "lines": lines,
            "latex_styled": f"\\text{{{text}}}" if lines else None,
            "confidence": self.confidence if lines else 0.0,
            "confidence_rate": self.confidence if lines else 0.0,
            "version": self.version,
        }

    def recognize_strokes(
        self, strokes: Mapping[str, Any], image: bytes, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Digital ink: the text describes the strokes received, so a test can tell what
        arrived: ``echo strokes:2 points:5 bbox:10,5,40,50 sha:<12 hex of the drawn PNG>``
        (count, total points, bounding box of the ink as x0,y0,x1,y1)."""
        xs, ys = strokes["x"], strokes["y"]
        points = [
            (x, y) for sx, sy in zip(xs, ys, strict=True) for x, y in zip(sx, sy, strict=True)
        ]
        left, top = min(p[0] for p in points), min(p[1] for p in points)
        right, bottom = max(p[0] for p in points), max(p[1] for p in points)
        box = ",".join(f"{v:g}" for v in (left, top, right, bottom))
        sha = hashlib.sha256(image).hexdigest()[:12]
        text = f"echo strokes:{len(xs)} points:{len(points)} bbox:{box} sha:{sha}"
        width, height = right - left, bottom - top
        return {
            "image_width": round(width) + 1,
            "image_height": round(height) + 1,
            "lines": [
                {"text": text, "confidence": self.confidence, "cnt": _box(0, 0, width, height)}
            ],
            "latex_styled": f"\\text{{{text}}}",
            "confidence": self.confidence,
            "confidence_rate": self.confidence,
            "version": self.version,
        }

    def pdf_page_count(self, pdf: bytes) -> int:
        if not pdf.startswith(b"%PDF"):
            raise EngineError("pdf_decode_error", "Cannot read the PDF (no %PDF header)")
        try:
            import pypdfium2  # noqa: F401
        except ImportError:  # count page objects when pdfium is not installed
            return max(1, len(re.findall(rb"/Type\s*/Page\b", pdf)))
        with _PDFIUM_LOCK:
            doc = _open_pdf(pdf)
            try:
                return len(doc)
            finally:
                doc.close()

    def recognize_pdf_page(
        self, pdf: bytes, page: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        sha = hashlib.sha256(pdf).hexdigest()[:12]
        width, height = 612, 792
        text = f"echo pdf page {page} sha:{sha}"
        return {
            "image_width": width,
            "image_height": height,
            "lines": [{"text": text, "confidence": self.confidence, "cnt": _box(0, 0, width, 40)}],
            "confidence": self.confidence,
            "confidence_rate": self.confidence,
            "version": self.version,
        }


class OfflineEngine:
    """Real text OCR with rapidocr 3.10 + onnxruntime (models ship inside the wheels).

    Plain text only: no offline math model exists, so results say ``math_recognition: false``
    and ``version`` ends in ``(no math)``. The model loads once per process (shared by every
    engine with the same params), lazily, and calls are serialised: one model, and 2-core
    machines gain nothing from parallel inference.
    """

    name = "offline"
    blocking = True

    PARAMS: Mapping[str, Any] = {
        "Global.use_cls": False,
        "Global.log_level": "warning",
        "Det.limit_side_len": 320,
        "Det.thresh": 0.2,
        "Det.box_thresh": 0.3,
    }

    def __init__(self, params: Mapping[str, Any] | None = None, pdf_scale: float = 2.0) -> None:
        self.params = {**self.PARAMS, **(params or {})}
        self.pdf_scale = pdf_scale
        # engines with the same params share one loaded model and its lock (per process)
        key = repr(sorted(self.params.items()))
        with _MODELS_LOCK:
            self._slot = _MODELS.setdefault(key, [None, threading.Lock()])
        try:
            from importlib.metadata import version

            rapid = version("rapidocr")
        except Exception:  # pragma: no cover
            rapid = "unknown"
        self.version = f"offline-rapidocr-{rapid} (no math)"

    @property
    def _lock(self) -> threading.Lock:
        lock: threading.Lock = self._slot[1]
        return lock

    def _engine(self) -> Any:
        """The loaded model (loads it on first use; call with ``self._lock`` held)."""
        if self._slot[0] is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as exc:  # pragma: no cover - depends on the installed extra
                raise RuntimeError(
                    "the offline engine needs rapidocr and onnxruntime: "
                    "pip install 'mathpix_nb[offline]'"
                ) from exc
            self._slot[0] = RapidOCR(params=dict(self.params))
        return self._slot[0]

    def _read(self, img: Image.Image) -> dict[str, Any]:
        import numpy as np

        rgb = img.convert("RGB")
        width, height = rgb.size
        array = np.asarray(rgb)[:, :, ::-1].copy()  # rapidocr expects BGR like OpenCV
        with self._lock:
            out = self._engine()(array)
        lines: list[dict[str, Any]] = []
        for text, score, box in zip(
            out.txts or (),
            out.scores or (),
            out.boxes if out.boxes is not None else (),
            strict=False,
        ):
            cnt = [[round(float(x)), round(float(y))] for x, y in box]
            lines.append({"text": str(text), "confidence": float(score), "cnt": cnt})
        lines = reading_order(lines)
        scores = [line["confidence"] for line in lines]
        confidence = sum(scores) / len(scores) if scores else 0.0
        return {
            "image_width": width,
            "image_height": height,
            "lines": lines,
            "confidence": confidence,
            "confidence_rate": min(scores) if scores else 0.0,
            "version": self.version,
            "extra": {"math_recognition": False},
        }

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        with _open_image(image) as img:
            region = _region(options, *img.size)
            if region:
                x, y, w, h = region
                cropped = img.crop((x, y, x + w, y + h))
                return self._read(cropped)
            return self._read(img)

    def pdf_page_count(self, pdf: bytes) -> int:
        with _PDFIUM_LOCK:
            doc = _open_pdf(pdf)
            try:
                return len(doc)
            finally:
                doc.close()

    def recognize_pdf_page(
        self, pdf: bytes, page: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        with _PDFIUM_LOCK:
            doc = _open_pdf(pdf)
            try:
                pil = doc[page - 1].render(scale=self.pdf_scale).to_pil()
            finally:
                doc.close()
        return self._read(pil)


def resolve_engine(engine: str | Engine) -> Engine:
    """``"echo"`` / ``"offline"`` or an object implementing ``Engine``."""
    if isinstance(engine, str):
        if engine == "echo":
            return EchoEngine()
        if engine == "offline":
            return OfflineEngine()
        raise ValueError(f"unknown engine {engine!r}; use 'echo', 'offline' or an Engine object")
    if not isinstance(engine, Engine):
        raise TypeError(
            "engine must be 'echo', 'offline' or an object with name, blocking, recognize(), "
            f"pdf_page_count() and recognize_pdf_page(); got {type(engine).__name__}"
        )
    return engine
