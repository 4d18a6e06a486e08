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
    TokenInfo,
    iso,
)


async def _image_endpoint(state: ServerState, call: Call, kind: str) -> Reply:
    cfg = state.config
    call.request_id = request_id = state.new_request_id()
    parsed = await read_upload(call)
    if isinstance(parsed, Reply):
        parsed.body = {"request_id": request_id, **parsed.body}
        return parsed
    image, options = parsed.data, parsed.options
    legacy_url = isinstance(options.get("url"), str) and "src" not in options
    if kind == "latex" and cfg.latex_legacy_fields and legacy_url:
        # the first v3/latex clients sent the image as "url" (docs are silent; accepted)
        options = {"src": options["url"], **{k: v for k, v in options.items() if k != "url"}}
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
        call.store.results.add(row)

    async def work(delay: float) -> dict[str, Any]:
        rec = await recognize(state, image, options)
        legacy = kind == "latex" and cfg.latex_legacy_fields
        body = shape_body(kind, rec, options, request_id, legacy=legacy)
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


TEXT_FILTERS = ("text", "text_display", "latex_styled")


async def handle_ocr_results(state: ServerState, call: Call) -> Reply:
    """Indexed listing: tag, PDF, app id and date filters and paging cost O(page) (see
    ``ResultStore.query``); ``request_id`` is a dict lookup. The text and detection filters
    are checked on the rows walked, so a query that only they narrow walks the store."""
    params = call.request.query_params
    listing = parse_listing(params, 1000)
    if isinstance(listing, Reply):
        return listing
    page, per_page, lo, hi = listing
    cap = state.config.results_page_cap
    if cap is not None:
        per_page = min(per_page, cap)
    wanted: dict[str, bool] = {}
    for name in (*BOOL_FILTERS, "include_null_results"):
        if params.get(name) not in (None, ""):
            parsed = parse_bool(name, params[name])
            if isinstance(parsed, Reply):
                return parsed
            wanted[name] = parsed
    include_null = wanted.pop("include_null_results", False)
    tags = frozenset(params.getlist("tags") + params.getlist("tags[]"))
    call.tags = tuple(sorted(tags))
    now = time.time()
    texts = {f: params[f] for f in TEXT_FILTERS if params.get(f)}

    def visible(row: StoredResult) -> bool:
        return row.result is not None and now >= row.visible_at

    def keep(row: StoredResult) -> bool:
        shown = visible(row)
        if not shown and not include_null:
            return False
        result = row.result if shown else None
        if any(v not in str((result or {}).get(f, "")) for f, v in texts.items()):
            return False
        return all(row.detections.get(name) is value for name, value in wanted.items())

    store = call.store.results
    app_id = params.get("app_id") or None
    pdf_id = params.get("pdf_id") or None
    if params.get("request_id"):  # the pollers' common case: a dict lookup, not a walk
        row = store.get(params["request_id"])
        rows = [
            r
            for r in ([row] if row is not None and page == 1 else [])
            if tags <= set(r.tags)
            and (app_id is None or r.app_id == app_id)
            and (pdf_id is None or r.pdf_id == pdf_id)
            and lo <= r.created < hi
            and keep(r)
        ]
    else:
        rows = store.query(
            tags=tags,
            app_id=app_id,
            pdf_id=pdf_id,
            lo=lo,
            hi=hi,
            newest_first=state.config.results_order == "newest",
            keep=keep,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
    items = []
    for row in rows:
        item = row.item()
        if not visible(row):
            item["result"] = None
        items.append(item)
    return Reply({"ocr_results": items})


def render_strokes(xs: list[list[float]], ys: list[list[float]]) -> bytes | None:
    """Draw handwriting strokes as a PNG (black on white) for an engine to read.

    The ink is scaled so its longer side is about 512 px (up or down, at most 8x up) with a
    pen width proportional to that, so both tiny tablet coordinates and large canvases give
    an image an OCR model can read."""
    from PIL import Image, ImageDraw

    points = [(x, y) for sx, sy in zip(xs, ys, strict=True) for x, y in zip(sx, sy, strict=True)]
    if not points:
        return None
    left, top = min(p[0] for p in points), min(p[1] for p in points)
    right, bottom = max(p[0] for p in points), max(p[1] for p in points)
    extent = max(right - left, bottom - top, 1.0)
    scale = min(8.0, 512 / extent)
    pen = max(3, round(min(extent * scale, 512) / 64))
    pad = 4 * pen
    width = int((right - left) * scale) + 2 * pad
    height = int((bottom - top) * scale) + 2 * pad
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for sx, sy in zip(xs, ys, strict=True):
        stroke = [
            ((x - left) * scale + pad, (y - top) * scale + pad) for x, y in zip(sx, sy, strict=True)
        ]
        r = pen / 2
        for x, y in (stroke[0], stroke[-1]):  # round pen ends
            draw.ellipse((x - r, y - r, x + r, y + r), fill="black")
        if len(stroke) > 1:
            draw.line(stroke, fill="black", width=pen, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _read_strokes(options: dict[str, Any]) -> tuple[list[list[float]], list[list[float]]] | str:
    """The x and y point lists of ``{"strokes": {"strokes": {"x": [...], "y": [...]}}}``, or
    the error id (``strokes_missing`` / ``strokes_syntax_error``)."""
    outer = options.get("strokes")
    if outer is None:
        return "strokes_missing"
    inner = outer.get("strokes") if isinstance(outer, dict) else None
    xs = inner.get("x") if isinstance(inner, dict) else None
    ys = inner.get("y") if isinstance(inner, dict) else None
    if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys)):
        return "strokes_syntax_error"
    for sx, sy in zip(xs, ys, strict=True):
        if not (isinstance(sx, list) and isinstance(sy, list) and len(sx) == len(sy)):
            return "strokes_syntax_error"
        if not all(is_number(v) for v in (*sx, *sy)):
            return "strokes_syntax_error"
    return xs, ys


def _session_ink(
    state: ServerState, session: TokenInfo, xs: list[list[float]], ys: list[list[float]]
) -> tuple[list[list[float]], list[list[float]]]:
    """Add a request's strokes to its live session; returns all the ink of the session.

    ``strokes_session_mode="auto"``: a request whose strokes begin with everything the
    session holds replaces it (clients that resend the whole drawing), any other request
    is appended (clients that send only the new strokes, like mpxpy's live test)."""
    mode = state.config.strokes_session_mode
    n = len(session.ink_x)
    resent = n > 0 and xs[:n] == session.ink_x and ys[:n] == session.ink_y
    if mode == "replace" or (mode == "auto" and (resent or n == 0)):
        session.ink_x, session.ink_y = list(xs), list(ys)
    else:
        session.ink_x, session.ink_y = session.ink_x + list(xs), session.ink_y + list(ys)
    return session.ink_x, session.ink_y


async def handle_strokes(state: ServerState, call: Call) -> Reply:
    """``v3/strokes``: digital ink, with keys or an app token, optionally in a live session
    (``strokes_session_id`` in the body as documented, or as a header as browser demos
    send it). A session is billed once (``strokes-session``), at its first request."""
    call.request_id = request_id = state.new_request_id()
    parsed = await read_upload(call)
    if isinstance(parsed, Reply):
        parsed.body = {"request_id": request_id, **parsed.body}
        return parsed
    options = parsed.options
    read = _read_strokes(options)
    if isinstance(read, str):
        message = (
            "Missing strokes"
            if read == "strokes_missing"
            else 'strokes must be {"strokes": {"x": [[...], ...], "y": [[...], ...]}}'
        )
        return error(read, message, request_id=request_id)
    xs, ys = read
    invalid = validate_image_options(options, "text")
    if invalid is not None:
        invalid.body = {"request_id": request_id, **invalid.body}
        return invalid
    session_id = options.get("strokes_session_id") or call.request.headers.get("strokes_session_id")
    session: TokenInfo | None = None
    if session_id is not None:
        session = state.tokens.session(str(session_id))
        expired = session is None or session.expires_at <= time.time()
        foreign = session is not None and call.token is not None and session is not call.token
        if expired or foreign:
            return error(
                "unauthorized_token_request",
                "strokes_session_id is unknown, expired, or not the session of this app_token",
                request_id=request_id,
            )
        assert session is not None
        xs, ys = _session_ink(state, session, xs, ys)
    image = render_strokes(xs, ys)
    if image is None:
        return error("strokes_no_content", "No strokes to read", request_id=request_id)
    call.image_sha256 = hashlib.sha256(image).hexdigest()
    call.tags = tuple(options.get("tags") or ())
    if session is None:
        over = charge_images(state, 1, "strokes", call.app_id)
    elif not session.session_billed:
        over = charge_images(state, 1, "strokes-session", call.app_id)
        session.session_billed = over is None
    else:
        over = None
    if over is not None:
        return over
    started = time.time()
    ink = {"x": xs, "y": ys}
    reader = getattr(state.engine, "recognize_strokes", None)
    if callable(reader):
        try:
            rec: dict[str, Any] | EngineError = await state.run_engine(
                reader, ink, image, dict(options), upload_bytes=len(call.body)
            )
        except EngineError as exc:
            rec = exc
    else:
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
            request_args={
                k: v for k, v in options.items() if k not in ("strokes", "strokes_session_id")
            },
            tags=call.tags,
        )
        finish_row(call, row, body, rec, started, 0.0)
        call.store.results.add(row)
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
