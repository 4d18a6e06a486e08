"""Shared pieces of the local server: replies and error envelopes, the server state,
one request's ``Call``, input parsing and validation, query-parameter parsing, quotas."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.to_thread
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ._config import ServerConfig
from ._engines import Engine
from ._faults import FaultInjector
from ._limits import Concurrency, MinuteWindow, Usage
from ._store import (
    RegionStore,
    RequestLog,
    TokenInfo,
    TokenStore,
)

logger = logging.getLogger("mathpix_nb.server")

LATEX_FORMATS = (
    "text",
    "text_display",
    "latex_normal",
    "latex_styled",
    "latex_simplified",
    "latex_list",
    "mathml",
    "asciimath",
    "wolfram",
)
CONVERSION_FORMATS = (
    "md",
    "docx",
    "tex.zip",
    "html",
    "pdf",
    "latex.pdf",
    "pptx",
    "mmd.zip",
    "md.zip",
    "html.zip",
    "xlsx",
    "mmd.overlay.pdf",
)
BOOL_FILTERS = (
    "is_printed",
    "is_handwritten",
    "contains_table",
    "contains_chemistry",
    "contains_diagram",
    "contains_triangle",
    "contains_algorithm",
)
UNIT_OPTIONS = (
    "confidence_threshold",
    "confidence_rate_threshold",
    "auto_rotate_confidence_threshold",
)


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    @property
    def error_id(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error_info"), dict):
            return str(self.body["error_info"].get("id"))
        return None

    def response(self) -> Response:
        if isinstance(self.body, AsyncIterator):
            return StreamingResponse(
                self.body, status_code=self.status, headers=self.headers, media_type=self.media_type
            )
        if not isinstance(self.body, (bytes, str)):
            return JSONResponse(self.body, status_code=self.status, headers=self.headers)
        return Response(
            self.body, status_code=self.status, headers=self.headers, media_type=self.media_type
        )


def envelope(error_id: str, message: str, **detail: Any) -> dict[str, Any]:
    """Mathpix's error body: ``{"error", "error_info": {"id", "message", ...detail}}``."""
    return {"error": message, "error_info": {"id": error_id, "message": message, **detail}}


def error(
    error_id: str, message: str, *, status: int = 200, request_id: str | None = None, **detail: Any
) -> Reply:
    body = envelope(error_id, message, **detail)
    if request_id is not None:
        body = {"request_id": request_id, **body}
    return Reply(body, status=status)


def unauthorized() -> Reply:
    return error("http_unauthorized", "Invalid credentials", status=401)


# --------------------------------------------------------------------------- state


class ServerState:
    """Everything the routes share: engine, config, tokens, per-region stores, log, limits."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: ServerConfig,
        regions: tuple[str, ...],
        app_id: str,
        app_key: str,
        group_id: str,
    ) -> None:
        self.engine = engine
        self.config = config
        self.app_id = app_id
        self.app_key = app_key
        self.group_id = group_id
        self.tokens = TokenStore()
        self.stores = {
            region: RegionStore(region, config.max_stored_results, config.max_stored_documents)
            for region in regions
        }
        self.log = RequestLog(config.max_log_records)
        self.faults = FaultInjector(config.faults)
        self.window = MinuteWindow()
        self.usage = Usage()
        self.concurrency = Concurrency()
        self.files: dict[str, tuple[bytes, str]] = {}
        self.inbox: dict[str, deque[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self.in_flight = 0  # OCR jobs holding a concurrency slot right now
        self.peak_in_flight = 0

    def set_config(self, config: ServerConfig) -> None:
        if config.faults != self.config.faults:
            self.faults = FaultInjector(config.faults)
        self.config = config
        self.log.resize(config.max_log_records)
        for store in self.stores.values():
            store.resize(config.max_stored_results, config.max_stored_documents)
        for name, messages in list(self.inbox.items()):
            self.inbox[name] = deque(messages, maxlen=config.max_inbox_messages)

    def post_inbox(self, name: str, message: dict[str, Any]) -> None:
        box = self.inbox.get(name)
        if box is None:
            box = self.inbox[name] = deque(maxlen=self.config.max_inbox_messages)
        box.append(message)

    def new_request_id(self) -> str:
        now = datetime.now(timezone.utc)
        return f"{now:%Y_%m_%d}_{secrets.token_hex(10)}g"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background job failed", exc_info=task.exception())

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()

    # -- work under the concurrency cap and the latency model

    async def run_engine(
        self, fn: Callable[..., dict[str, Any]], *args: Any, upload_bytes: int
    ) -> dict[str, Any]:
        cfg = self.config
        async with self.concurrency.limiter(cfg.max_concurrency):
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                delay = cfg.latency_base + cfg.latency_per_kb * upload_bytes / 1024
                if delay > 0:
                    await anyio.sleep(delay)
                if self.engine.blocking:
                    return await anyio.to_thread.run_sync(fn, *args)
                return fn(*args)
            finally:
                self.in_flight -= 1


class Call:
    """One request on its way through ``_dispatch``: what the log and handlers need."""

    def __init__(
        self, request: Request, region: str, endpoint: str, body: bytes, state: ServerState
    ) -> None:
        self.request = request
        self.region = region
        self.endpoint = endpoint
        self.body = body
        self.bytes_received = len(body)
        self.state = state
        self.auth_mode: str | None = None
        self.token: TokenInfo | None = None  # the app token this request authenticated with
        self.app_id: str = state.app_id
        self.tags: tuple[str, ...] = ()
        self.request_id: str | None = None
        self.image_sha256: str | None = None
        self.fault: str | None = None

    @property
    def store(self) -> RegionStore:
        return self.state.stores[self.region]


Handler = Callable[[ServerState, Call], Awaitable[Reply]]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


async def fetch_src(
    state: ServerState, src: str, *, limit: int, what: str = "image"
) -> bytes | Reply:
    """Bytes of a ``data:`` URI or an http(s) URL, or the Mathpix error reply."""
    cfg = state.config
    if src.startswith("data:"):
        match = re.match(r"data:([^,]*?),(.*)\Z", src, re.DOTALL)
        if match is None:
            return error("image_decode_error", "Invalid data URI")
        meta, payload = match.groups()
        if len(payload) > cfg.max_base64_bytes:
            return error(
                "sys_request_too_large", f"Base64 image is larger than {cfg.max_base64_bytes} bytes"
            )
        if meta.endswith(";base64"):
            try:
                return base64.b64decode("".join(payload.split()), validate=True)
            except (binascii.Error, ValueError):
                return error("image_decode_error", "Invalid base64 data in data URI")
        from urllib.parse import unquote_to_bytes

        return unquote_to_bytes(payload)
    if not re.match(r"https?://", src, re.IGNORECASE):
        return error(f"{what}_download_error", "src must be an http(s) URL or a data: URI", url=src)
    try:
        async with state.http.stream("GET", src, timeout=cfg.download_timeout) as response:
            if response.status_code != 200:
                return error(
                    f"{what}_download_error",
                    f"Download failed with HTTP {response.status_code}",
                    url=src,
                )
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    return error(
                        f"{what}_download_error", f"File larger than {limit} bytes", url=src
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        return error(
            f"{what}_download_error", f"Download failed ({exc.__class__.__name__})", url=src
        )


def json_depth_ok(value: Any, limit: int) -> bool:
    """True if ``value`` nests at most ``limit`` levels of lists/objects (checked without
    recursion, so any depth the JSON decoder accepted is safe to check)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_json_object(raw: bytes | str, state: ServerState, what: str = "Request body") -> Any:
    """The JSON object in ``raw`` (empty -> ``{}``), or the ``json_syntax`` reply.

    Nesting deeper than ``max_json_depth`` is refused the same way: Python's decoder raises
    RecursionError near 1,000 levels, and a deep value that does decode would fail later
    when it is echoed back (``request_args``)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return error("json_syntax", f"{what} is not UTF-8 encoded JSON")
    else:
        text = raw
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return error("json_syntax", f"{what} is not valid JSON ({exc.msg} at {exc.pos})")
    except RecursionError:
        value = None
        deep = True
    else:
        deep = not json_depth_ok(value, state.config.max_json_depth)
    if deep:
        return error(
            "json_syntax",
            f"{what} nests deeper than {state.config.max_json_depth} levels",
        )
    if not isinstance(value, dict):
        return error("json_syntax", f"{what} must be a JSON object")
    return value


@dataclass
class Part:
    """One part of a multipart/form-data body, bytes as received (filename or not)."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part] | Reply:
    """Every part of ``body`` by field name (the first one wins), or the ``json_syntax`` reply.

    Own parsing (python-multipart's low-level parser) rather than Starlette's form: a part
    without a filename stays bytes (Starlette would decode it as text), and the body is
    already in memory, bounded by the route's size limit."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        return error("json_syntax", "multipart/form-data body without a boundary")
    parts: dict[str, Part] = {}
    headers: dict[bytes, bytes] = {}
    field_name: list[bytes] = []
    field_value: list[bytes] = []
    chunks: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        chunks.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        field_value.append(data[start:end])

    def on_header_end() -> None:
        headers[b"".join(field_name).lower()] = b"".join(field_value)
        field_name.clear()
        field_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = disp.get(b"filename")
        ctype = headers.get(b"content-type")
        part = Part(
            name=name,
            filename=raw_filename.decode("utf-8", "replace") if raw_filename is not None else None,
            content_type=ctype.decode("latin-1") if ctype else None,
            data=b"".join(chunks),
        )
        parts.setdefault(name, part)

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own error types
        return error("json_syntax", f"Cannot parse multipart body ({exc.__class__.__name__})")
    return parts


@dataclass
class Upload:
    """What a v3 request carried: file bytes (multipart ``file``), its filename, options."""

    data: bytes | None
    filename: str | None
    options: dict[str, Any]


async def read_upload(call: Call) -> Upload | Reply:
    """Multipart ``file`` + ``options_json``, or a JSON body (options, maybe ``src``/``url``)."""
    ctype = call.request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        parts = parse_multipart(call.body, ctype)
        if isinstance(parts, Reply):
            return parts
        raw = parts["options_json"].data if "options_json" in parts else b""
        options = parse_json_object(raw, call.state, "options_json")
        if isinstance(options, Reply):
            return options
        upload = parts.get("file")
        if upload is None:
            return Upload(None, None, options)
        return Upload(upload.data, upload.filename, options)
    options = parse_json_object(call.body, call.state)
    if isinstance(options, Reply):
        return options
    return Upload(None, None, options)


def validate_image_options(options: Mapping[str, Any], kind: str) -> Reply | None:
    for name in UNIT_OPTIONS:
        if name in options and options[name] is not None:
            value = options[name]
            if not is_number(value):
                return error(
                    "opts_number_required", f"{name} must be a number", name=name, value=value
                )
            if not 0 <= value <= 1:
                return error(
                    "opts_value_out_of_range",
                    f"{name} must be between 0 and 1",
                    name=name,
                    value=value,
                )
    region = options.get("region")
    if region is not None and region != {}:
        keys = ("top_left_x", "top_left_y", "width", "height")
        if (
            not isinstance(region, dict)
            or not all(is_number(region.get(k)) for k in keys)
            or region["width"] <= 0
            or region["height"] <= 0
            or region["top_left_x"] < 0
            or region["top_left_y"] < 0
        ):
            return error(
                "opts_value_out_of_range",
                "region needs numeric top_left_x, top_left_y, width > 0, height > 0",
                name="region",
                value=region,
            )
    tags = options.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        return error(
            "opts_value_out_of_range", "tags must be a list of strings", name="tags", value=tags
        )
    metadata = options.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return error(
            "opts_value_out_of_range", "metadata must be an object", name="metadata", value=metadata
        )
    callback = options.get("callback")
    if callback is not None and (
        not isinstance(callback, dict) or not isinstance(callback.get("post"), str)
    ):
        return error("opts_bad_callback", "callback must be an object with a 'post' URL")
    formats = options.get("formats")
    if formats is not None and not isinstance(formats, (list, dict)):
        return error("opts_unknown_format", "formats must be a list of strings", formats=formats)
    if isinstance(formats, list) and not all(isinstance(f, str) for f in formats):
        bad = [f for f in formats if not isinstance(f, str)]
        return error(
            "opts_unknown_format", "formats must be a list of format names (strings)", formats=bad
        )
    if kind == "latex":
        unknown = [f for f in (formats or []) if f not in LATEX_FORMATS]
        if unknown:
            return error(
                "opts_unknown_format",
                f"Unknown format(s): {', '.join(map(str, unknown))}",
                formats=unknown,
            )
        ocr = options.get("ocr")
        if ocr is not None and (
            not isinstance(ocr, list)
            or "math" not in ocr
            or any(o not in ("math", "text") for o in ocr)
        ):
            return error("opts_unknown_ocr", 'ocr must be ["math"] or ["math", "text"]', ocr=ocr)
    return None


def improve_mathpix(options: Mapping[str, Any]) -> bool:
    metadata = options.get("metadata")
    return not (isinstance(metadata, dict) and metadata.get("improve_mathpix") is False)


def stored_request_args(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "src"}


def charge_images(
    state: ServerState, images: int, usage_type: str = "image", app_id: str = ""
) -> Reply | None:
    quota = state.config.monthly_quota
    if quota is not None and state.usage.images + images > quota:
        return error(
            "http_max_requests",
            "Too many requests",
            status=429,
            limit_name="image_monthly_limit",
            limit_value=quota,
            count=state.usage.images + images,
        )
    state.usage.images += images
    state.usage.record(time.time(), usage_type, app_id or state.app_id, images)
    return None


def parse_bool(name: str, value: str) -> bool | Reply:
    if value in ("true", "True", "TRUE", "1"):
        return True
    if value in ("false", "False", "FALSE", "0"):
        return False
    return error("opts_value_out_of_range", f"{name} must be true or false", name=name, value=value)


def _parse_int(name: str, value: str | None, default: int, maximum: int) -> int | Reply:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return error("opts_number_required", f"{name} must be an integer", name=name, value=value)
    if not 1 <= number <= maximum:
        return error(
            "opts_value_out_of_range",
            f"{name} must be between 1 and {maximum}",
            name=name,
            value=number,
        )
    return number


def _parse_date(name: str, value: str) -> float | Reply:
    try:
        # an unencoded "+01:00" offset arrives as " 01:00" after query-string decoding
        text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", value.strip()).replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
    except ValueError:
        return error(
            "opts_value_out_of_range",
            f"{name} must be an ISO 8601 date or datetime",
            name=name,
            value=value,
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_paging(params: Any, max_per_page: int) -> tuple[int, int] | Reply:
    page = _parse_int("page", params.get("page"), 1, 1_000_000)
    if isinstance(page, Reply):
        return page
    per_page = _parse_int("per_page", params.get("per_page"), 100, max_per_page)
    if isinstance(per_page, Reply):
        return per_page
    return page, per_page


def parse_listing(params: Any, max_per_page: int) -> tuple[int, int, float, float] | Reply:
    """``page``, ``per_page``, ``from_date`` (inclusive) and ``to_date`` (exclusive) of a
    results listing, or the error reply for the first bad one."""
    paging = parse_paging(params, max_per_page)
    if isinstance(paging, Reply):
        return paging
    dates = parse_date_range(params)
    if isinstance(dates, Reply):
        return dates
    return (*paging, *dates)


def parse_date_range(params: Any) -> tuple[float, float] | Reply:
    lo, hi = -math.inf, math.inf
    if params.get("from_date"):
        parsed = _parse_date("from_date", params["from_date"])
        if isinstance(parsed, Reply):
            return parsed
        lo = parsed
    if params.get("to_date"):
        parsed = _parse_date("to_date", params["to_date"])
        if isinstance(parsed, Reply):
            return parsed
        hi = parsed
    return lo, hi
