"""Image endpoints: v3/text, v3/latex, v3/ocr-results, v3/strokes, v3/ocr-usage."""

from __future__ import annotations

import hashlib
import io
import math
import time
from datetime import datetime, timezone
from typing import Any

from ._bodies import finish_row, recognize, shape_body
from ._core import (
    BOOL_FILTERS,
    Call,
    Reply,
    ServerState,
    charge_images,
    error,
    fetch_src,
    improve_mathpix,
    is_number,
    parse_bool,
    parse_date_range,
    parse_listing,
    read_upload,
    stored_request_args,
    validate_image_options,
)
from ._engines import EngineError
from ._store import (
    StoredResult,
    iso,
)


async def _image_endpoint(state: ServerState, call: Call, kind: str) -> Reply:
    cfg = state.config
    call.request_id = request_id = state.new_request_id()
    if len(call.body) > cfg.max_body_bytes:
        return error(
            "sys_request_too_large",
            f"Request body is larger than {cfg.max_body_bytes} bytes",
            request_id=request_id,
        )
    parsed = await read_upload(call, cfg.max_body_bytes)
    if isinstance(parsed, Reply):
        parsed.body = {"request_id": request_id, **parsed.body}
        return parsed
    image, options = parsed
    invalid = validate_image_options(options, kind)
    if invalid is not None:
        invalid.body = {"request_id": request_id, **invalid.body}
        return invalid
    call.tags = tuple(options.get("tags") or ())
    is_async = bool(options.get("async"))
    if is_async and call.auth_mode == "app_token":
        return error(
            "unauthorized_token_request",
            "App tokens cannot make batch or async requests",
            request_id=request_id,
        )
    if image is None:
        src = options.get("src")
        if not src or not isinstance(src, str):
            return error(
                "image_missing",
                "Missing image: send a 'file' part or a 'src' field",
                request_id=request_id,
            )
        fetched = await fetch_src(state, src, limit=cfg.max_download_bytes)
        if isinstance(fetched, Reply):
            fetched.body = {"request_id": request_id, **fetched.body}
            return fetched
        image = fetched
    call.image_sha256 = hashlib.sha256(image).hexdigest()
    over = charge_images(state, 1, "image-async" if is_async else "image", call.app_id)
    if over is not None:
        return over

    started = time.time()
    endpoint = "/v3/latex" if kind == "latex" else "/v3/text"
    row: StoredResult | None = None
    if improve_mathpix(options):
        row = StoredResult(
            image_id=request_id,
            endpoint=endpoint,
            created=started,
            app_id=call.app_id,
            request_args=stored_request_args(options),
            tags=call.tags,
            visible_at=math.inf,
        )
        call.store.results[request_id] = row

    async def work(delay: float) -> dict[str, Any]:
        rec = await recognize(state, image, options)
        body = shape_body(kind, rec, options, request_id)
        if row is not None:
            finish_row(call, row, body, rec, started, delay)
        return body

    if is_async:

        async def background() -> None:
            await work(cfg.async_delay)

        state.spawn(background())
        return Reply({"request_id": request_id})
    return Reply(await work(0.0))


async def handle_text(state: ServerState, call: Call) -> Reply:
    return await _image_endpoint(state, call, "text")


async def handle_latex(state: ServerState, call: Call) -> Reply:
    return await _image_endpoint(state, call, "latex")


async def handle_ocr_results(state: ServerState, call: Call) -> Reply:
    params = call.request.query_params
    listing = parse_listing(params, 1000)
    if isinstance(listing, Reply):
        return listing
    page, per_page, lo, hi = listing
    wanted: dict[str, bool] = {}
    for name in (*BOOL_FILTERS, "include_null_results"):
        if params.get(name) not in (None, ""):
            parsed = parse_bool(name, params[name])
            if isinstance(parsed, Reply):
                return parsed
            wanted[name] = parsed
    include_null = wanted.pop("include_null_results", False)
    tags = set(params.getlist("tags") + params.getlist("tags[]"))
    call.tags = tuple(sorted(tags))
    now = time.time()
    rows = []
    candidates: Any = call.store.results.values()
    if params.get("request_id"):  # the pollers' common case: a dict lookup, not a scan
        found = call.store.results.get(params["request_id"])
        candidates = [found] if found is not None else []
    for row in candidates:
        visible = row.result is not None and now >= row.visible_at
        if not visible and not include_null:
            continue
        if params.get("app_id") and row.app_id != params["app_id"]:
            continue
        if params.get("request_id") and row.image_id != params["request_id"]:
            continue
        if params.get("pdf_id") and row.pdf_id != params["pdf_id"]:
            continue
        if not tags <= set(row.tags):
            continue
        if not lo <= row.created < hi:
            continue
        result = row.result if visible else None
        if any(
            params.get(f) and params[f] not in str((result or {}).get(f, ""))
            for f in ("text", "text_display", "latex_styled")
        ):
            continue
        if any(row.detections.get(name) is not value for name, value in wanted.items()):
            continue
        rows.append((row, visible))
    # ties (same timestamp) keep arrival order, reversed too for newest-first
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i][0].created, i),
        reverse=state.config.results_order == "newest",
    )
    rows = [rows[i] for i in order]
    items = []
    for row, visible in rows[(page - 1) * per_page : page * per_page]:
        item = row.item()
        if not visible:
            item["result"] = None
        items.append(item)
    return Reply({"ocr_results": items})


STROKES_MAX_BYTES = 512 * 1024


def render_strokes(xs: list[list[float]], ys: list[list[float]]) -> bytes | None:
    """Draw handwriting strokes as a PNG (black on white) for the engine to read."""
    from PIL import Image, ImageDraw

    points = [(x, y) for sx, sy in zip(xs, ys, strict=True) for x, y in zip(sx, sy, strict=True)]
    if not points:
        return None
    left, top = min(p[0] for p in points), min(p[1] for p in points)
    right, bottom = max(p[0] for p in points), max(p[1] for p in points)
    scale = min(1.0, 1024 / max(right - left + 1, bottom - top + 1))
    pad = 16
    width = int((right - left) * scale) + 2 * pad
    height = int((bottom - top) * scale) + 2 * pad
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for sx, sy in zip(xs, ys, strict=True):
        stroke = [
            ((x - left) * scale + pad, (y - top) * scale + pad) for x, y in zip(sx, sy, strict=True)
        ]
        if len(stroke) == 1:
            draw.point(stroke, fill="black")
        else:
            draw.line(stroke, fill="black", width=3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def handle_strokes(state: ServerState, call: Call) -> Reply:
    call.request_id = request_id = state.new_request_id()
    if len(call.body) > STROKES_MAX_BYTES:
        return error(
            "sys_request_too_large",
            f"Strokes body is larger than {STROKES_MAX_BYTES} bytes",
            request_id=request_id,
        )
    parsed = await read_upload(call, STROKES_MAX_BYTES)
    if isinstance(parsed, Reply):
        parsed.body = {"request_id": request_id, **parsed.body}
        return parsed
    _, options = parsed
    outer = options.get("strokes")
    if outer is None:
        return error("strokes_missing", "Missing strokes", request_id=request_id)
    inner = outer.get("strokes") if isinstance(outer, dict) else None
    xs = inner.get("x") if isinstance(inner, dict) else None
    ys = inner.get("y") if isinstance(inner, dict) else None
    try:
        ok = (
            isinstance(xs, list)
            and isinstance(ys, list)
            and len(xs) == len(ys)
            and all(len(a) == len(b) for a, b in zip(xs, ys, strict=True))
            and all(is_number(v) for stroke in xs + ys for v in stroke)
        )
    except TypeError:
        ok = False
    if not ok:
        return error(
            "strokes_syntax_error",
            'strokes must be {"strokes": {"x": [[...], ...], "y": [[...], ...]}}',
            request_id=request_id,
        )
    assert isinstance(xs, list) and isinstance(ys, list)
    invalid = validate_image_options(options, "text")
    if invalid is not None:
        invalid.body = {"request_id": request_id, **invalid.body}
        return invalid
    image = render_strokes(xs, ys)
    if image is None:
        return error("strokes_no_content", "No strokes to read", request_id=request_id)
    call.image_sha256 = hashlib.sha256(image).hexdigest()
    call.tags = tuple(options.get("tags") or ())
    over = charge_images(state, 1, "strokes", call.app_id)
    if over is not None:
        return over
    started = time.time()
    rec = await recognize(state, image, options)
    if not isinstance(rec, EngineError):
        rec = {**rec, "is_printed": False, "is_handwritten": True}
    body = shape_body("text", rec, options, request_id)
    if improve_mathpix(options):
        row = StoredResult(
            image_id=request_id,
            endpoint="/v3/strokes",
            created=started,
            app_id=call.app_id,
            request_args={k: v for k, v in options.items() if k != "strokes"},
            tags=call.tags,
        )
        finish_row(call, row, body, rec, started, 0.0)
        call.store.results[request_id] = row
    return Reply(body)


def _bucket(ts: float, timespan: str) -> str:
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if timespan == "year":
        dt = dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif timespan == "day":
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    elif timespan == "hour":
        dt = dt.replace(minute=0, second=0, microsecond=0)
    else:
        dt = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return iso(dt.timestamp())


async def handle_ocr_usage(state: ServerState, call: Call) -> Reply:
    """Counts per usage type (image, image-async, pdf-page, strokes) and time bucket.

    Usage is account-wide (billing is global), so every region answers the same."""
    params = call.request.query_params
    dates = parse_date_range(params)
    if isinstance(dates, Reply):
        return dates
    lo, hi = dates
    timespan = params.get("timespan") or "month"
    if timespan not in ("hour", "day", "month", "year"):
        return error(
            "opts_value_out_of_range",
            "timespan must be hour, day, month or year",
            name="timespan",
            value=timespan,
        )
    wanted_type, wanted_app = params.get("usage_type"), params.get("app_id")
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for ts, usage_type, app_id, count in state.usage.events:
        if not lo <= ts < hi or (wanted_type and usage_type != wanted_type):
            continue
        if wanted_app and app_id != wanted_app:
            continue
        key = (_bucket(ts, timespan), usage_type)
        group = groups.setdefault(
            key,
            {
                "from_date": key[0],
                "app_id": [],
                "usage_type": usage_type,
                "request_args_hash": [],
                "count": 0,
            },
        )
        group["count"] += count
        if app_id not in group["app_id"]:
            group["app_id"].append(app_id)
    return Reply({"ocr_usage": [groups[k] for k in sorted(groups, reverse=True)]})
