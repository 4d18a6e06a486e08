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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.to_thread
import httpx
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ._config import ServerConfig
from ._engines import Engine
from ._faults import FaultInjector
from ._limits import Concurrency, MinuteWindow, Usage
from ._store import (
    RegionStore,
    RequestLog,
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
        self.stores = {region: RegionStore(region) for region in regions}
        self.log = RequestLog()
        self.faults = FaultInjector(config.faults)
        self.window = MinuteWindow()
        self.usage = Usage()
        self.concurrency = Concurrency()
        self.files: dict[str, tuple[bytes, str]] = {}
        self.inbox: dict[str, list[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self.in_flight = 0  # OCR jobs holding a concurrency slot right now
        self.peak_in_flight = 0

    def set_config(self, config: ServerConfig) -> None:
        if config.faults != self.config.faults:
            self.faults = FaultInjector(config.faults)
        self.config = config

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
        self.state = state
        self.auth_mode: str | None = None
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


async def read_upload(call: Call, limit: int) -> tuple[bytes | None, dict[str, Any]] | Reply:
    """Multipart ``file`` + ``options_json``, or a JSON body: (file bytes or None, options)."""
    ctype = call.request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await call.request.form(max_part_size=limit + 1)
        except Exception as exc:
            return error("json_syntax", f"Cannot parse multipart body: {exc}")
        try:
            return await _read_form(form)
        finally:
            await form.close()  # spooled upload files would otherwise leak until GC
    try:
        options = json.loads(call.body) if call.body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error("json_syntax", "Request body is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "Request body must be a JSON object")
    return None, options


async def _read_form(form: FormData) -> tuple[bytes | None, dict[str, Any]] | Reply:
    raw = form.get("options_json")
    if isinstance(raw, UploadFile):
        raw = (await raw.read()).decode("utf-8", "replace")
    try:
        options = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return error("json_syntax", "options_json is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "options_json must be a JSON object")
    upload = form.get("file")
    if isinstance(upload, UploadFile):
        return await upload.read(), options
    if isinstance(upload, str):
        return error("image_missing", "The 'file' part must be a file upload (with a filename)")
    return None, options


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
    state.usage.events.append((time.time(), usage_type, app_id or state.app_id, images))
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
