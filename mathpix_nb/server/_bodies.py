"""Response bodies: engine results shaped as Mathpix v3/text and v3/latex answers."""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping
from typing import Any

from ._core import Call, ServerState, envelope
from ._engines import EngineError, opencv_format
from ._store import StoredResult


def _detections(rec: Mapping[str, Any]) -> dict[str, bool]:
    return {
        "contains_algorithm": False,
        "contains_chemistry": False,
        "contains_diagram": False,
        "contains_table": False,
        "contains_triangle": False,
        "is_handwritten": bool(rec.get("is_handwritten", False)),
        "is_printed": bool(rec.get("is_printed", True)),
    }


#: what v3/text answers; other names are ignored (changelog 2024-06-22), and a request
#: left with none of these gets the text format (the docs' rule for an empty list)
TEXT_FORMATS = ("text", "data", "html", "latex_styled")


def _requested_formats(
    options: Mapping[str, Any], default: tuple[str, ...], known: tuple[str, ...] | None = None
) -> list[str]:
    formats = options.get("formats")
    if isinstance(formats, dict):
        formats = [k for k, v in formats.items() if v]
    chosen = [f for f in (formats or []) if known is None or f in known]
    return chosen or list(default)


def delimit(text: str, options: Mapping[str, Any]) -> str:
    """Engines write math as ``\\( .. \\)`` / ``\\[ .. \\]``; apply the request's
    ``math_inline_delimiters`` / ``math_display_delimiters`` as Mathpix does."""
    for key, default in (
        ("math_inline_delimiters", ("\\(", "\\)")),
        ("math_display_delimiters", ("\\[", "\\]")),
    ):
        pair = options.get(key)
        if (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and all(isinstance(d, str) for d in pair)
            and tuple(pair) != default
        ):
            text = text.replace(default[0], "\0OPEN\0").replace(default[1], pair[1])
            text = text.replace("\0OPEN\0", pair[0])
    return text


def text_of(rec: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    return "\n".join(delimit(str(line["text"]), options) for line in rec.get("lines", []))


def _common(rec: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "version": rec.get("version", "local"),
        "image_width": rec.get("image_width"),
        "image_height": rec.get("image_height"),
        "is_printed": bool(rec.get("is_printed", True)),
        "is_handwritten": bool(rec.get("is_handwritten", False)),
        "auto_rotate_confidence": 0,
        "auto_rotate_degrees": 0,
    }


def text_body(
    rec: Mapping[str, Any], options: Mapping[str, Any], request_id: str
) -> dict[str, Any]:
    """A v3/text response body from an engine result."""
    body = _common(rec, request_id)
    body["confidence"] = rec.get("confidence", 0.0)
    body["confidence_rate"] = rec.get("confidence_rate", 0.0)
    body.update(rec.get("extra") or {})
    lines = rec.get("lines") or []
    if not lines:
        body.update(envelope("image_no_content", "Content not found"))
        return body
    threshold = options.get("confidence_threshold")
    if threshold is not None and body["confidence"] < threshold:
        body.update(envelope("math_confidence", "Low confidence"))
        return body
    text = text_of(rec, options)
    formats = _requested_formats(options, ("text",), TEXT_FORMATS)
    if "text" in formats:
        body["text"] = text
    if "latex_styled" in formats and rec.get("latex_styled"):
        body["latex_styled"] = rec["latex_styled"]
    if "html" in formats:
        body["html"] = (
            "<div>" + "<br>\n".join(html.escape(str(li["text"])) for li in lines) + "</div>"
        )
    if "data" in formats:
        data_options = options.get("data_options") or {}
        data = []
        if data_options.get("include_asciimath"):
            data.append({"type": "asciimath", "value": text})
        if data_options.get("include_latex"):
            data.append({"type": "latex", "value": rec.get("latex_styled") or text})
        if data_options.get("include_mathml"):
            data.append(
                {"type": "mathml", "value": f"<math><mtext>{html.escape(text)}</mtext></math>"}
            )
        body["data"] = data
    if options.get("include_line_data"):
        body["line_data"] = [
            {
                "id": f"{request_id[-9:-1]}{i:04d}",
                "type": "text",
                "cnt": li["cnt"],
                "included": True,
                "conversion_output": True,
                "is_printed": body["is_printed"],
                "is_handwritten": body["is_handwritten"],
                "text": delimit(str(li["text"]), options),
                "confidence": li["confidence"],
                "confidence_rate": li["confidence"],
            }
            for i, li in enumerate(lines)
        ]
    if options.get("include_word_data"):
        body["word_data"] = [
            {
                "type": "text",
                "cnt": li["cnt"],
                "text": word,
                "confidence": li["confidence"],
                "confidence_rate": li["confidence"],
            }
            for li in lines
            for word in str(li["text"]).split()
        ]
    if options.get("include_detected_alphabets"):
        body["detected_alphabets"] = {
            a: a == "en"
            for a in ("en", "hi", "zh", "ja", "ko", "ru", "th", "ta", "te", "gu", "bn", "vi")
        }
    return body


def latex_body(
    rec: Mapping[str, Any], options: Mapping[str, Any], request_id: str, legacy: bool = False
) -> dict[str, Any]:
    """A v3/latex (legacy) response body from an engine result; ``legacy`` adds the old
    ``latex`` field when no ``formats`` were asked for."""
    body = _common(rec, request_id)
    lines = rec.get("lines") or []
    printed = int(bool(rec.get("is_printed", True)))
    body["detection_list"] = ["is_printed"] if printed else []
    body["detection_map"] = {
        "contains_chart": 0,
        "contains_diagram": 0,
        "contains_geometry": 0,
        "contains_graph": 0,
        "contains_table": 0,
        "is_blank": 0 if lines else 1,
        "is_inverted": 0,
        "is_not_math": 1 if lines and not rec.get("latex_styled") else 0,
        "is_printed": printed,
    }
    body["latex_confidence"] = rec.get("confidence", 0.0)
    body["latex_confidence_rate"] = rec.get("confidence_rate", 0.0)
    if not lines:
        body.update(envelope("image_no_content", "Content not found"))
        return body
    xs = [p[0] for li in lines for p in li["cnt"]]
    ys = [p[1] for li in lines for p in li["cnt"]]
    body["position"] = {
        "top_left_x": min(xs),
        "top_left_y": min(ys),
        "width": max(xs) - min(xs),
        "height": max(ys) - min(ys),
    }
    threshold = options.get("confidence_threshold")
    if threshold is not None and body["latex_confidence"] < threshold:
        body.update(envelope("math_confidence", "Low confidence"))
        return body
    text = text_of(rec, {})
    latex = rec.get("latex_styled") or "\\text{" + text.replace("\n", " ") + "}"
    asked = options.get("formats")
    if legacy and not asked:
        body["latex"] = latex  # the field the first v3/latex answers carried
    for fmt in _requested_formats(options, ("latex_normal",)):
        if fmt in ("text", "text_display", "asciimath", "wolfram"):
            body[fmt] = text
        elif fmt == "latex_list":
            body[fmt] = [latex]
        elif fmt == "mathml":
            body[fmt] = f"<math><mtext>{html.escape(text)}</mtext></math>"
        else:
            body[fmt] = latex
    return body


# Pillow names of the formats Mathpix reads (anything OpenCV reads; GIF is not among them).
SUPPORTED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "BMP", "DIB", "JPEG2000", "WEBP", "PPM", "PFM", "TIFF", "SUN", "HDR"}
)


def unsupported_format(image: bytes) -> EngineError | None:
    """``image_decode_error`` for bytes Mathpix would not decode (e.g. GIF, PDF, text)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as img:
            fmt = img.format or "unknown"
    except (UnidentifiedImageError, OSError, ValueError):
        if opencv_format(image) is not None:
            return None  # EXR, HDR, PFM, PAM: the engine decodes them with OpenCV (or says why)
        return EngineError("image_decode_error", "Cannot decode image data")
    if fmt not in SUPPORTED_FORMATS:
        return EngineError("image_decode_error", f"Unsupported image format {fmt}")
    return None


def region_outside(image: bytes, options: Mapping[str, Any]) -> EngineError | None:
    """``opts_value_out_of_range`` when ``region`` does not overlap the image at all (a
    region partly outside is clipped to the image, as the engines do)."""
    region = options.get("region")
    if not isinstance(region, Mapping) or not region:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as img:
            width, height = img.size
    except Exception:  # undecodable: the engine answers image_decode_error
        return None
    x, y = region["top_left_x"], region["top_left_y"]
    if x >= width or y >= height:
        return EngineError(
            "opts_value_out_of_range",
            f"region starts at ({x:g}, {y:g}), outside the {width}x{height} image",
        )
    return None


async def recognize(
    state: ServerState, image: bytes, options: Mapping[str, Any]
) -> dict[str, Any] | EngineError:
    """Run the engine under the concurrency cap and latency model; errors become values."""
    refused = unsupported_format(image) or region_outside(image, options)
    if refused is not None:
        return refused
    try:
        return await state.run_engine(
            state.engine.recognize, image, dict(options), upload_bytes=len(image)
        )
    except EngineError as exc:
        return exc


def shape_body(
    kind: str,
    rec: dict[str, Any] | EngineError,
    options: Mapping[str, Any],
    request_id: str,
    *,
    legacy: bool = False,
) -> dict[str, Any]:
    if isinstance(rec, EngineError):
        return {"request_id": request_id, **envelope(rec.error_id, rec.message)}
    if kind == "latex":
        return latex_body(rec, options, request_id, legacy)
    return text_body(rec, options, request_id)


def finish_row(
    call: Call,
    row: StoredResult,
    body: dict[str, Any],
    rec: dict[str, Any] | EngineError,
    started: float,
    delay: float,
) -> None:
    now = time.time()
    row.result = body
    row.timestamp = now
    row.duration = now - started
    row.visible_at = now + delay
    if not isinstance(rec, EngineError):
        row.detections = _detections(rec)
