"""The Starlette application: Mathpix v3 routes over the shared server state.

Every route goes through ``_dispatch``, which reads the body, draws a fault, authenticates,
applies the per-minute rate limit, calls the handler and writes one ``RequestRecord``.
Handlers return a ``Reply`` (body + status); nothing here knows about threads or ports.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import html
import io
import json
import logging
import math
import re
import secrets
import time
import zipfile
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ._config import ServerConfig
from ._engines import Engine, EngineError
from ._faults import FaultInjector
from ._limits import Concurrency, MinuteWindow, Usage
from ._store import (
    BatchJob,
    PdfJob,
    RegionStore,
    RequestLog,
    RequestRecord,
    StoredResult,
    TokenStore,
    iso,
)

logger = logging.getLogger("mathpix_nb.server")

TEXT_FORMATS = ("text", "data", "html", "latex_styled")
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
# Conversions this server really produces; the others end in conversion status "error".
PRODUCED_CONVERSIONS = ("md", "html", "tex.zip", "mmd.zip", "md.zip", "html.zip")
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


# --------------------------------------------------------------------------- dispatch


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


@dataclass(frozen=True)
class Spec:
    path: str
    endpoint: str
    methods: tuple[str, ...]
    handler: Handler
    auth: str  # "keys" | "key" | "keys_or_token" | "none"
    metered: bool = False


def _authenticate(state: ServerState, call: Call, scheme: str) -> Reply | None:
    if scheme == "none":
        return None
    headers = call.request.headers
    app_id, app_key, token = headers.get("app_id"), headers.get("app_key"), headers.get("app_token")
    if app_key is not None:
        if not secrets.compare_digest(app_key.encode(), state.app_key.encode()):
            return unauthorized()
        if app_id is not None and app_id != state.app_id:
            return unauthorized()
        if app_id is None and scheme in ("keys", "keys_or_token"):
            return unauthorized()
        call.auth_mode = "keys" if app_id is not None else "app_key"
        return None
    if token is not None:
        if scheme == "keys_or_token":
            info = state.tokens.valid(token, time.time())
            if info is None or call.fault == "token_expired":
                if state.config.expired_token_mode == "401":
                    return unauthorized()
                return error(
                    "unauthorized_token_request",
                    "Invalid app_token",
                    request_id=state.new_request_id(),
                )
            call.auth_mode = "app_token"
            call.app_id = info.app_id
            return None
        if call.endpoint == "/v3/batch":
            return error(
                "unauthorized_token_request", "App tokens cannot make batch or async requests"
            )
        return unauthorized()
    return unauthorized()


def _rate_limit(state: ServerState) -> Reply | None:
    cfg = state.config
    now = time.monotonic()
    count = state.window.admit(cfg.rate_limit_per_minute, now)
    if count is None:
        return None
    reply = error(
        "http_max_requests",
        "Too many requests",
        status=429,
        limit_name="requests_per_minute",
        limit_value=cfg.rate_limit_per_minute,
        count=count,
    )
    if cfg.retry_after_header:
        reply.headers["Retry-After"] = str(state.window.retry_after(now))
    return reply


def _gateway_error(status: int) -> Reply:
    from http import HTTPStatus

    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = f"{status} Server Error"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Reply(page, status=status, media_type="text/html")


async def _drop_connection(scope: Scope) -> None:
    scope["mathpix_nb.close_transport"]()
    # let the protocol see connection_lost, so uvicorn sends nothing afterwards
    for _ in range(3):
        await asyncio.sleep(0)


def _log(state: ServerState, call: Call, reply: Reply | None, started: float, t0: float) -> None:
    """One ``RequestRecord`` (``reply`` None = connection dropped). Never logs secrets."""
    request = call.request
    if call.request_id is None and reply is not None and isinstance(reply.body, dict):
        rid = reply.body.get("request_id")
        call.request_id = rid if isinstance(rid, str) else None
    state.log.append(
        RequestRecord(
            endpoint=call.endpoint,
            method=request.method,
            region=call.region,
            path=re.sub(r"token_[0-9A-Za-z]+", "token_***", request.url.path),
            bytes_received=len(call.body),
            auth_mode=call.auth_mode,
            tags=call.tags,
            status_code=None if reply is None else reply.status,
            error_id=None if reply is None else reply.error_id,
            request_id=call.request_id,
            image_sha256=call.image_sha256,
            fault=call.fault,
            timestamp=started,
            duration=time.monotonic() - t0,
        )
    )


def _fault_key(request: Request, body: bytes) -> str:
    """What makes two requests "the same" for seeded faults: method, path, query and body,
    minus the random multipart boundary (so uploads of the same file match across runs)."""
    ctype = request.headers.get("content-type", "")
    match = re.search(r"boundary=\"?([^\";]+)", ctype)
    if match:
        body = body.replace(match.group(1).encode(), b"")
    raw = f"{request.method} {request.url.path}?{request.url.query}".encode()
    return hashlib.sha256(raw + b"\n" + body).hexdigest()


async def _dispatch(state: ServerState, spec: Spec, region: str, request: Request) -> Response:
    started, t0 = time.time(), time.monotonic()
    body = await request.body()
    call = Call(request, region, spec.endpoint, body, state)
    key = _fault_key(request, body)
    uses_token = "app_token" in request.headers and "app_key" not in request.headers
    call.fault = state.faults.decide(spec.endpoint, key, uses_token)
    try:
        if call.fault == "drop" and "mathpix_nb.close_transport" in request.scope:
            _log(state, call, None, started, t0)  # before the client can see the drop
            await _drop_connection(request.scope)
            return Response(status_code=500)  # never sent: the connection is gone
        if call.fault in ("drop", "http_5xx"):
            fault_status = state.faults.faults.status_5xx if state.faults.faults else 503
            reply = _gateway_error(502 if call.fault == "drop" else fault_status)
        else:
            if call.fault == "slow" and state.faults.faults is not None:
                await anyio.sleep(state.faults.faults.slow_seconds)
            reply = _authenticate(state, call, spec.auth) or Reply(None)
            if reply.body is None and call.fault == "sys_exception":
                call.request_id = state.new_request_id()
                reply = error(
                    "sys_exception", "Server error, please try again", request_id=call.request_id
                )
            if reply.body is None and spec.metered:
                reply = _rate_limit(state) or reply
            if reply.body is None:
                reply = await spec.handler(state, call)
    except Exception:
        logger.exception("local server bug while handling %s %s", request.method, request.url.path)
        reply = error("sys_exception", "Internal server error", status=500)
    if not spec.endpoint.startswith("/_local/"):
        _log(state, call, reply, started, t0)
    return reply.response()


class _TransportAccess:
    """Outer ASGI layer: exposes a way to close the raw connection (for "drop" faults)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope["mathpix_nb.close_transport"] = transport.close
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------- inputs


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


async def _fetch(state: ServerState, src: str, *, limit: int, what: str = "image") -> bytes | Reply:
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


async def _read_upload(call: Call, limit: int) -> tuple[bytes | None, dict[str, Any]] | Reply:
    """Multipart ``file`` + ``options_json``, or a JSON body: (file bytes or None, options)."""
    ctype = call.request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await call.request.form(max_part_size=limit + 1)
        except Exception as exc:
            return error("json_syntax", f"Cannot parse multipart body: {exc}")
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
    try:
        options = json.loads(call.body) if call.body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error("json_syntax", "Request body is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "Request body must be a JSON object")
    return None, options


def _validate_image_options(options: Mapping[str, Any], kind: str) -> Reply | None:
    for name in UNIT_OPTIONS:
        if name in options and options[name] is not None:
            value = options[name]
            if not _is_number(value):
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
            or not all(_is_number(region.get(k)) for k in keys)
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


def _improve(options: Mapping[str, Any]) -> bool:
    metadata = options.get("metadata")
    return not (isinstance(metadata, dict) and metadata.get("improve_mathpix") is False)


def _request_args(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "src"}


# --------------------------------------------------------------------------- result bodies


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


def _requested_formats(options: Mapping[str, Any], default: tuple[str, ...]) -> list[str]:
    formats = options.get("formats")
    if isinstance(formats, dict):
        formats = [k for k, v in formats.items() if v]
    return list(formats) if formats else list(default)


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


def _text_of(rec: Mapping[str, Any], options: Mapping[str, Any]) -> str:
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
    text = _text_of(rec, options)
    formats = _requested_formats(options, ("text",))
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
    rec: Mapping[str, Any], options: Mapping[str, Any], request_id: str
) -> dict[str, Any]:
    """A v3/latex (legacy) response body from an engine result."""
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
    text = _text_of(rec, {})
    latex = rec.get("latex_styled") or "\\text{" + text.replace("\n", " ") + "}"
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


async def _recognize(
    state: ServerState, image: bytes, options: Mapping[str, Any]
) -> dict[str, Any] | EngineError:
    try:
        return await state.run_engine(
            state.engine.recognize, image, dict(options), upload_bytes=len(image)
        )
    except EngineError as exc:
        return exc


def _shape(
    kind: str, rec: dict[str, Any] | EngineError, options: Mapping[str, Any], request_id: str
) -> dict[str, Any]:
    if isinstance(rec, EngineError):
        return {"request_id": request_id, **envelope(rec.error_id, rec.message)}
    return (latex_body if kind == "latex" else text_body)(rec, options, request_id)


def _store_result(
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


# --------------------------------------------------------------------------- image endpoints


def _quota_reply(
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


async def _image_endpoint(state: ServerState, call: Call, kind: str) -> Reply:
    cfg = state.config
    call.request_id = request_id = state.new_request_id()
    if len(call.body) > cfg.max_body_bytes:
        return error(
            "sys_request_too_large",
            f"Request body is larger than {cfg.max_body_bytes} bytes",
            request_id=request_id,
        )
    parsed = await _read_upload(call, cfg.max_body_bytes)
    if isinstance(parsed, Reply):
        parsed.body = {"request_id": request_id, **parsed.body}
        return parsed
    image, options = parsed
    invalid = _validate_image_options(options, kind)
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
        fetched = await _fetch(state, src, limit=cfg.max_download_bytes)
        if isinstance(fetched, Reply):
            fetched.body = {"request_id": request_id, **fetched.body}
            return fetched
        image = fetched
    call.image_sha256 = hashlib.sha256(image).hexdigest()
    over = _quota_reply(state, 1, "image-async" if is_async else "image", call.app_id)
    if over is not None:
        return over

    started = time.time()
    endpoint = "/v3/latex" if kind == "latex" else "/v3/text"
    row: StoredResult | None = None
    if _improve(options):
        row = StoredResult(
            image_id=request_id,
            endpoint=endpoint,
            created=started,
            app_id=call.app_id,
            request_args=_request_args(options),
            tags=call.tags,
            visible_at=math.inf,
        )
        call.store.results[request_id] = row

    async def work(delay: float) -> dict[str, Any]:
        rec = await _recognize(state, image, options)
        body = _shape(kind, rec, options, request_id)
        if row is not None:
            _store_result(call, row, body, rec, started, delay)
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


# --------------------------------------------------------------------------- ocr-results


def _parse_bool(name: str, value: str) -> bool | Reply:
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


def _paging(params: Any, max_per_page: int) -> tuple[int, int] | Reply:
    page = _parse_int("page", params.get("page"), 1, 1_000_000)
    if isinstance(page, Reply):
        return page
    per_page = _parse_int("per_page", params.get("per_page"), 100, max_per_page)
    if isinstance(per_page, Reply):
        return per_page
    return page, per_page


def _date_range(params: Any) -> tuple[float, float] | Reply:
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


async def handle_ocr_results(state: ServerState, call: Call) -> Reply:
    params = call.request.query_params
    paging = _paging(params, 1000)
    if isinstance(paging, Reply):
        return paging
    page, per_page = paging
    dates = _date_range(params)
    if isinstance(dates, Reply):
        return dates
    lo, hi = dates
    wanted: dict[str, bool] = {}
    for name in (*BOOL_FILTERS, "include_null_results"):
        if params.get(name) not in (None, ""):
            parsed = _parse_bool(name, params[name])
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


# --------------------------------------------------------------------------- app tokens


def _expires_at(state: ServerState, expires_at: float) -> int | str:
    fmt = state.config.token_expires_format
    if fmt == "seconds":
        return int(expires_at)
    ms = int(expires_at * 1000)
    return str(ms) if fmt == "ms_string" else ms


async def handle_app_token_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    try:
        options = json.loads(call.body) if call.body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error("json_syntax", "Request body is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "Request body must be a JSON object")
    strokes = bool(options.get("include_strokes_session_id", False))
    expires = options.get("expires", 300)
    if not _is_number(expires):
        return error(
            "opts_number_required",
            "expires must be a number of seconds",
            name="expires",
            value=expires,
        )
    top = min(cfg.token_max_expires, 300) if strokes else cfg.token_max_expires
    if not cfg.token_min_expires <= expires <= top:
        return error(
            "opts_value_out_of_range",
            f"expires must be between {cfg.token_min_expires:g} and {top:g} seconds",
            name="expires",
            value=expires,
        )
    user_id = options.get("user_id")
    info = state.tokens.create(
        lifetime=float(expires),
        app_id=state.app_id,
        group_id=state.group_id,
        user_id=str(user_id) if user_id is not None else None,
        strokes=strokes,
    )
    body: dict[str, Any] = {
        "app_token": info.app_token,
        "app_token_expires_at": _expires_at(state, info.expires_at),
    }
    if info.strokes_session_id:
        body["strokes_session_id"] = info.strokes_session_id
    return Reply(body)


async def handle_app_token_get(state: ServerState, call: Call) -> Reply:
    info = state.tokens.get(call.request.path_params["token"])
    if info is None:
        return error("token_unknown", "Unknown app token")
    return Reply(
        {
            "app_token": info.app_token,
            "app_token_expires_at": _expires_at(state, info.expires_at),
            "app_id": info.app_id,
            "group_id": info.group_id,
            "user_id": info.user_id,
        }
    )


async def handle_app_token_delete(state: ServerState, call: Call) -> Reply:
    info = state.tokens.delete(call.request.path_params["token"])
    if info is None:
        return error("token_unknown", "Unknown app token")
    return Reply(
        {
            "app_token": info.app_token,
            "app_id": info.app_id,
            "group_id": info.group_id,
            "user_id": info.user_id,
        }
    )


# --------------------------------------------------------------------------- PDFs


def _pdf_outputs(job: PdfJob) -> dict[str, bytes]:
    texts = [_text_of(page, job.request_args) for page in job.pages]
    mmd = "\n\n".join(texts).encode()
    lines_json = {
        "pages": [
            {
                "image_id": f"{job.pdf_id}-{page.get('page', n)}",
                "page": page.get("page", n),
                "page_width": page.get("image_width"),
                "page_height": page.get("image_height"),
                "lines": [
                    {
                        "id": f"{job.pdf_id[-8:]}{n:03d}{i:03d}",
                        "type": "text",
                        "line": i + 1,
                        "column": 0,
                        "font_size": 12,
                        "text": li["text"],
                        "text_display": li["text"],
                        "conversion_output": True,
                        "is_printed": True,
                        "is_handwritten": False,
                        "region": {
                            "top_left_x": min(p[0] for p in li["cnt"]),
                            "top_left_y": min(p[1] for p in li["cnt"]),
                            "width": max(p[0] for p in li["cnt"]) - min(p[0] for p in li["cnt"]),
                            "height": max(p[1] for p in li["cnt"]) - min(p[1] for p in li["cnt"]),
                        },
                        "cnt": li["cnt"],
                        "confidence": li["confidence"],
                        "confidence_rate": li["confidence"],
                    }
                    for i, li in enumerate(page.get("lines", []))
                ],
            }
            for n, page in enumerate(job.pages, start=1)
        ]
    }
    encoded = json.dumps(lines_json).encode()
    return {"mmd": mmd, "lines.json": encoded, "lines.mmd.json": encoded}


_RANGE = re.compile(r"^(-?\d+)(?:\s*-\s*(-?\d+))?$")


def valid_page_ranges(spec: str) -> bool:
    """``"2,4-6"``, ``"2 - -2"`` (2nd to next-to-last): comma-separated pages or ranges."""
    return all(_RANGE.match(part.strip()) for part in spec.split(",")) if spec.strip() else True


def select_pages(spec: str, count: int) -> list[int]:
    """1-based page numbers a ``page_ranges`` value selects from ``count`` pages."""
    if not spec.strip():
        return list(range(1, count + 1))

    def resolve(n: int) -> int:
        return n if n > 0 else count + 1 + n

    pages: list[int] = []
    for part in spec.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            continue
        first = resolve(int(match.group(1)))
        last = resolve(int(match.group(2))) if match.group(2) else first
        for page in range(max(1, first), min(count, last) + 1):
            if page not in pages:
                pages.append(page)
    return pages


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def _conversion(fmt: str, job: PdfJob, mmd: bytes) -> bytes | None:
    html_doc = (
        "<html><body>"
        + "".join(f"<p>{html.escape(p)}</p>" for p in mmd.decode().split("\n\n"))
        + "</body></html>"
    ).encode()
    tex = b"\\documentclass{article}\n\\begin{document}\n" + mmd + b"\n\\end{document}\n"
    produced = {
        "md": mmd,
        "html": html_doc,
        "tex.zip": _zip(f"{job.pdf_id}/{job.pdf_id}.tex", tex),
        "mmd.zip": _zip(f"{job.pdf_id}.mmd", mmd),
        "md.zip": _zip(f"{job.pdf_id}.md", mmd),
        "html.zip": _zip(f"{job.pdf_id}.html", html_doc),
    }
    return produced.get(fmt)


async def _process_pdf(
    state: ServerState,
    call: Call,
    job: PdfJob,
    data: bytes | None,
    url: str | None,
    options: dict[str, Any],
) -> None:
    step = state.config.pdf_step_delay

    def fail(error_id: str, message: str) -> None:
        job.status = "error"
        job.error_info = {"id": error_id, "message": message}
        job.modified = time.time()

    await anyio.sleep(step)
    if data is None and url is not None:
        fetched = await _fetch(state, url, limit=state.config.max_pdf_bytes, what="pdf")
        if isinstance(fetched, Reply):
            info = fetched.body["error_info"]
            fail(info["id"], info["message"])
            return
        data = fetched
    assert data is not None
    job.status, job.modified = "loaded", time.time()
    await anyio.sleep(step)
    try:
        if state.engine.blocking:
            count = await anyio.to_thread.run_sync(state.engine.pdf_page_count, data)
        else:
            count = state.engine.pdf_page_count(data)
    except EngineError as exc:
        fail(exc.error_id, exc.message)
        return
    selected = select_pages(str(options.get("page_ranges") or ""), count)
    quota = state.config.monthly_page_quota
    if quota is not None and state.usage.pages + len(selected) > quota:
        fail("http_max_requests", "Monthly page limit exceeded")
        return
    state.usage.pages += len(selected)
    state.usage.events.append((time.time(), "pdf-page", job.app_id, len(selected)))
    job.num_pages, job.status, job.modified = len(selected), "split", time.time()
    for done, page in enumerate(selected, start=1):
        try:
            rec = await state.run_engine(
                state.engine.recognize_pdf_page,
                data,
                page,
                options,
                upload_bytes=len(data) // max(count, 1),
            )
        except EngineError as exc:
            fail(exc.error_id, exc.message)
            return
        job.pages.append({**rec, "page": page})
        job.num_pages_completed, job.modified = done, time.time()
        if job.store_results:
            image_id = f"{job.pdf_id}-{page}"
            body = text_body(rec, {}, image_id)
            row = StoredResult(
                image_id=image_id,
                endpoint="/v3/pdf",
                created=time.time(),
                app_id=job.app_id,
                request_args={},
                tags=(),
                pdf_id=job.pdf_id,
            )
            _store_result(call, row, body, rec, job.created, 0.0)
            call.store.results[image_id] = row
        await anyio.sleep(0)
    job.outputs.update(_pdf_outputs(job))
    for fmt in job.conversion_formats:
        job.conversion_status[fmt] = {"status": "processing"}
    job.status, job.modified = "completed", time.time()
    if job.conversion_formats:
        await anyio.sleep(step)
        for fmt in job.conversion_formats:
            produced = _conversion(fmt, job, job.outputs["mmd"])
            if produced is None:
                job.conversion_status[fmt] = {
                    "status": "error",
                    "error_info": {
                        "id": "conversion_error",
                        "message": f"{fmt} conversion is not available on the local server",
                    },
                }
            else:
                job.outputs[fmt] = produced
                job.conversion_status[fmt] = {"status": "completed"}
        job.modified = time.time()


async def handle_pdf_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    if len(call.body) > cfg.max_pdf_bytes:
        return error(
            "sys_request_too_large", f"PDF upload is larger than {cfg.max_pdf_bytes} bytes"
        )
    parsed = await _read_upload(call, cfg.max_pdf_bytes)
    if isinstance(parsed, Reply):
        return parsed
    data, options = parsed
    url = options.get("url")
    if data is None and not (isinstance(url, str) and url):
        return error("pdf_missing", "Missing PDF: send a 'file' part or a 'url' field")
    ranges = options.get("page_ranges")
    if ranges is not None and (not isinstance(ranges, str) or not valid_page_ranges(ranges)):
        return error(
            "opts_value_out_of_range",
            'page_ranges must look like "2,4-6" or "2 - -2"',
            name="page_ranges",
            value=ranges,
        )
    formats = options.get("conversion_formats") or {}
    if not isinstance(formats, dict):
        return error(
            "opts_value_out_of_range",
            "conversion_formats must be an object",
            name="conversion_formats",
            value=formats,
        )
    unknown = [f for f in formats if f not in (*CONVERSION_FORMATS, "mmd", "lines.json")]
    if unknown:
        return error(
            "opts_unknown_format",
            f"Unknown conversion format(s): {', '.join(unknown)}",
            formats=unknown,
        )
    quota = cfg.monthly_page_quota
    if quota is not None and state.usage.pages >= quota:
        return error(
            "http_max_requests",
            "Too many requests",
            status=429,
            limit_name="page_monthly_limit",
            limit_value=quota,
            count=state.usage.pages + 1,
        )
    if data is not None:
        call.image_sha256 = hashlib.sha256(data).hexdigest()
    pdf_id = state.new_request_id()
    call.request_id = pdf_id
    upload = call.request.headers.get("content-type", "").startswith("multipart/")
    job = PdfJob(
        pdf_id=pdf_id,
        app_id=call.app_id,
        created=time.time(),
        input_file=url if isinstance(url, str) and data is None else ("upload" if upload else ""),
        request_args=_request_args(options),
        conversion_formats=[f for f, on in formats.items() if on and f in CONVERSION_FORMATS],
        store_results=_improve(options),
    )
    job.modified = job.created
    call.store.pdfs[pdf_id] = job
    state.spawn(_process_pdf(state, call, job, data, url if data is None else None, options))
    return Reply({"pdf_id": pdf_id})


def _split_pdf_name(name: str) -> tuple[str, str | None]:
    pdf_id, _, ext = name.partition(".")
    return pdf_id, ext or None


async def handle_pdf_get(state: ServerState, call: Call) -> Reply:
    pdf_id, ext = _split_pdf_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if ext is None:
        if job is None:
            return error("pdf_unknown_id", "PDF ID expired or isn't valid")
        return Reply(job.status_body())
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if ext == "tex":
        ext = "tex.zip"
    if job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF results were deleted", status=404)
    if ext in job.outputs:
        media = {
            "mmd": "text/plain; charset=utf-8",
            "md": "text/markdown; charset=utf-8",
            "html": "text/html; charset=utf-8",
        }.get(ext)
        if ext.endswith("json"):
            media = "application/json"
        return Reply(job.outputs[ext], media_type=media or "application/octet-stream")
    if job.status == "error":
        return Reply(job.status_body(), status=404)
    conversion = job.conversion_status.get(ext)
    if conversion is not None and conversion["status"] == "error":
        info = conversion["error_info"]
        return Reply(envelope(info["id"], info["message"]), status=404)
    if ext not in ("mmd", "lines.json", "lines.mmd.json") and ext not in job.conversion_formats:
        return error("file_missing", f"{ext} was not requested in conversion_formats", status=404)
    status = state.config.pdf_not_ready_status
    return Reply(job.status_body(), status=status, headers={"Retry-After": "1"})


async def handle_pdf_delete(state: ServerState, call: Call) -> Reply:
    pdf_id, _ = _split_pdf_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if job.status not in ("completed", "error") or job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF is still processing or already deleted", status=404)
    job.deleted_at = time.time()
    job.outputs.clear()
    body = job.status_body()
    body.update(
        {
            "created_at": iso(job.created),
            "num_pages": job.num_pages,
            "num_pages_completed": job.num_pages_completed,
            "version": "local",
        }
    )
    return Reply(body)


async def handle_converter_get(state: ServerState, call: Call) -> Reply:
    job = call.store.pdfs.get(call.request.path_params["conversion_id"])
    if job is None or not job.conversion_status or job.deleted_at is not None:
        return error("cnv_unknown_id", "Conversion ID not found (yet)")
    statuses = [s["status"] for s in job.conversion_status.values()]
    overall = "completed" if all(s != "processing" for s in statuses) else "processing"
    return Reply({"status": overall, "conversion_status": job.conversion_status})


async def handle_pdf_results(state: ServerState, call: Call) -> Reply:
    params = call.request.query_params
    paging = _paging(params, 1000)
    if isinstance(paging, Reply):
        return paging
    page, per_page = paging
    dates = _date_range(params)
    if isinstance(dates, Reply):
        return dates
    lo, hi = dates
    jobs = [
        j
        for j in call.store.pdfs.values()
        if lo <= j.created < hi
        and (not params.get("app_id") or j.app_id == params["app_id"])
        and (not params.get("pdf_id") or j.pdf_id == params["pdf_id"])
    ]
    jobs.sort(key=lambda j: j.created, reverse=state.config.results_order == "newest")
    return Reply(
        {
            "pdfs": [
                {
                    "id": j.pdf_id,
                    "input_file": j.input_file,
                    "status": j.status,
                    "created_at": iso(j.created),
                    "modified_at": iso(j.modified),
                    "num_pages": j.num_pages,
                    "num_pages_completed": j.num_pages_completed,
                    "request_args": j.request_args,
                }
                for j in jobs[(page - 1) * per_page : page * per_page]
            ]
        }
    )


# --------------------------------------------------------------------------- batch


async def _process_batch(
    state: ServerState,
    call: Call,
    job: BatchJob,
    items: dict[str, tuple[str, dict[str, Any]]],
    kind: str,
    store: bool,
) -> None:
    async def one(key: str, src: str, options: dict[str, Any]) -> None:
        request_id = state.new_request_id()
        fetched = await _fetch(state, src, limit=state.config.max_download_bytes)
        if isinstance(fetched, Reply):
            job.results[key] = {"request_id": request_id, **fetched.body}
            return
        started = time.time()
        rec = await _recognize(state, fetched, options)
        body = _shape(kind, rec, options, request_id)
        job.results[key] = body
        if store:
            row = StoredResult(
                image_id=request_id,
                endpoint="/v3/batch",
                created=started,
                app_id=job.app_id,
                request_args=_request_args(options),
                tags=tuple(options.get("tags") or ()),
            )
            _store_result(call, row, body, rec, started, 0.0)
            call.store.results[request_id] = row

    async with anyio.create_task_group() as tg:
        for key, (src, options) in items.items():
            tg.start_soon(one, key, src, options)


async def handle_batch_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    if len(call.body) > cfg.max_body_bytes:
        return error(
            "sys_request_too_large", f"Request body is larger than {cfg.max_body_bytes} bytes"
        )
    try:
        options = json.loads(call.body) if call.body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error("json_syntax", "Request body is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "Request body must be a JSON object")
    urls = options.get("urls")
    if not isinstance(urls, dict) or not urls:
        return error("image_missing", "urls must be a non-empty object of key -> URL")
    behavior = options.get("ocr_behavior", "latex")
    if behavior not in ("latex", "text"):
        return error(
            "opts_value_out_of_range",
            'ocr_behavior must be "latex" or "text"',
            name="ocr_behavior",
            value=behavior,
        )
    base = {k: v for k, v in options.items() if k not in ("urls", "ocr_behavior", "callback")}
    invalid = _validate_image_options(base, behavior)
    if invalid is not None:
        return invalid
    callback = options.get("callback")
    if callback is not None and (
        not isinstance(callback, dict)
        or not isinstance(callback.get("post"), str)
        or "batch_id" in (callback.get("reply") or {})
    ):
        return error("opts_bad_callback", "callback must be an object with a 'post' URL")
    items: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, value in urls.items():
        if isinstance(value, str):
            items[key] = (value, dict(base))
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            per = {k: v for k, v in value.items() if k != "url"}
            items[key] = (value["url"], {**base, **per})
        else:
            return error("image_missing", f"urls[{key!r}] must be a URL or an object with 'url'")
    call.tags = tuple(base.get("tags") or ())
    over = _quota_reply(state, len(items), "image", call.app_id)
    if over is not None:
        return over
    job = BatchJob(
        batch_id=call.store.next_batch_id(), app_id=call.app_id, keys=list(items), callback=callback
    )
    call.store.batches[job.batch_id] = job
    state.spawn(_process_batch(state, call, job, items, behavior, _improve(base)))
    batch_id: int | str = job.batch_id if cfg.batch_id_type == "int" else str(job.batch_id)
    return Reply({"batch_id": batch_id})


async def handle_batch_get(state: ServerState, call: Call) -> Reply:
    raw = call.request.path_params["batch_id"]
    job = call.store.batches.get(int(raw)) if raw.isdigit() else None
    if job is None:
        return error("batch_unknown_id", "Unknown batch id", batch_id=raw)
    body: dict[str, Any] = {"keys": job.keys, "results": dict(job.results)}
    if job.callback is not None:
        body["callback"] = job.callback
    return Reply(body)


# --------------------------------------------------------------------------- strokes, usage

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
    parsed = await _read_upload(call, STROKES_MAX_BYTES)
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
            and all(_is_number(v) for stroke in xs + ys for v in stroke)
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
    invalid = _validate_image_options(options, "text")
    if invalid is not None:
        invalid.body = {"request_id": request_id, **invalid.body}
        return invalid
    image = render_strokes(xs, ys)
    if image is None:
        return error("strokes_no_content", "No strokes to read", request_id=request_id)
    call.image_sha256 = hashlib.sha256(image).hexdigest()
    call.tags = tuple(options.get("tags") or ())
    over = _quota_reply(state, 1, "strokes", call.app_id)
    if over is not None:
        return over
    started = time.time()
    rec = await _recognize(state, image, options)
    if not isinstance(rec, EngineError):
        rec = {**rec, "is_printed": False, "is_handwritten": True}
    body = _shape("text", rec, options, request_id)
    if _improve(options):
        row = StoredResult(
            image_id=request_id,
            endpoint="/v3/strokes",
            created=started,
            app_id=call.app_id,
            request_args={k: v for k, v in options.items() if k != "strokes"},
            tags=call.tags,
        )
        _store_result(call, row, body, rec, started, 0.0)
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
    dates = _date_range(params)
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


# --------------------------------------------------------------------------- local extras


async def handle_file(state: ServerState, call: Call) -> Reply:
    found = state.files.get(call.request.path_params["name"])
    if found is None:
        return Reply({"error": "not found"}, status=404)
    data, content_type = found
    return Reply(data, media_type=content_type)


async def handle_health(state: ServerState, call: Call) -> Reply:
    return Reply(
        {
            "server": "mathpix_nb local Mathpix-compatible API",
            "region": call.region,
            "engine": state.engine.name,
        }
    )


SPECS: tuple[Spec, ...] = (
    Spec("/v3/text", "/v3/text", ("POST",), handle_text, "keys_or_token", metered=True),
    Spec("/v3/latex", "/v3/latex", ("POST",), handle_latex, "keys_or_token", metered=True),
    Spec("/v3/strokes", "/v3/strokes", ("POST",), handle_strokes, "keys_or_token", metered=True),
    Spec("/v3/ocr-results", "/v3/ocr-results", ("GET",), handle_ocr_results, "key"),
    Spec("/v3/ocr-usage", "/v3/ocr-usage", ("GET",), handle_ocr_usage, "keys"),
    Spec("/v3/app-tokens", "/v3/app-tokens", ("POST",), handle_app_token_new, "key"),
    Spec(
        "/v3/app-tokens/{token}",
        "/v3/app-tokens/{app_token}",
        ("GET",),
        handle_app_token_get,
        "key",
    ),
    Spec(
        "/v3/app-tokens/{token}",
        "/v3/app-tokens/{app_token}",
        ("DELETE",),
        handle_app_token_delete,
        "key",
    ),
    Spec("/v3/pdf", "/v3/pdf", ("POST",), handle_pdf_new, "keys", metered=True),
    Spec("/v3/pdf/{name}", "/v3/pdf/{pdf_id}", ("GET",), handle_pdf_get, "keys"),
    Spec("/v3/pdf/{name}", "/v3/pdf/{pdf_id}", ("DELETE",), handle_pdf_delete, "keys"),
    Spec("/v3/pdf-results", "/v3/pdf-results", ("GET",), handle_pdf_results, "key"),
    Spec(
        "/v3/converter/{conversion_id}",
        "/v3/converter/{conversion_id}",
        ("GET",),
        handle_converter_get,
        "keys",
    ),
    Spec("/v3/batch", "/v3/batch", ("POST",), handle_batch_new, "keys", metered=True),
    Spec("/v3/batch/{batch_id}", "/v3/batch/{batch_id}", ("GET",), handle_batch_get, "keys"),
    Spec("/_local/files/{name}", "/_local/files/{name}", ("GET",), handle_file, "none"),
    Spec("/_local/health", "/_local/health", ("GET",), handle_health, "none"),
)


def build_app(state: ServerState, region: str) -> ASGIApp:
    """The ASGI app serving one region of ``state``."""

    def endpoint_for(spec: Spec) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await _dispatch(state, spec, region, request)

        return endpoint

    # One Route per (path, method) pair keeps each method's spec separate.
    routes = [Route(spec.path, endpoint_for(spec), methods=list(spec.methods)) for spec in SPECS]
    return _TransportAccess(Starlette(routes=routes))
