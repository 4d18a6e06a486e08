"""The Starlette application: Mathpix v3 routes over the shared server state.

Every route goes through ``_dispatch``, which reads the body, draws a fault, authenticates,
applies the per-minute rate limit, calls the handler and writes one ``RequestRecord``.
Handlers return a ``Reply`` (body + status); nothing here knows about threads or ports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ._core import Call, Handler, Reply, ServerState, error, unauthorized
from ._documents import (
    handle_batch_get,
    handle_batch_new,
    handle_converter_get,
    handle_pdf_delete,
    handle_pdf_get,
    handle_pdf_new,
    handle_pdf_results,
    handle_pdf_stream,
)
from ._files import ROUTES as FILES_ROUTES
from ._images import handle_latex, handle_ocr_results, handle_ocr_usage, handle_strokes, handle_text
from ._store import RequestRecord
from ._tokens import handle_app_token_delete, handle_app_token_get, handle_app_token_new

logger = logging.getLogger("mathpix_nb.server")


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


# --------------------------------------------------------------------------- local extras


async def handle_file(state: ServerState, call: Call) -> Reply:
    found = state.files.get(call.request.path_params["name"])
    if found is None:
        return Reply({"error": "not found"}, status=404)
    data, content_type = found
    return Reply(data, media_type=content_type)


async def handle_inbox_post(state: ServerState, call: Call) -> Reply:
    """A sink for callbacks (batch ``callback.post``), read back with ``server.inbox(name)``."""
    try:
        payload = json.loads(call.body) if call.body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = call.body.decode("utf-8", "replace")
    headers = {k: v for k, v in call.request.headers.items()}
    state.inbox.setdefault(call.request.path_params["name"], []).append(
        {"json": payload, "headers": headers}
    )
    return Reply({"ok": True})


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
    Spec("/v3/pdf/{pdf_id}/stream", "/v3/pdf/{pdf_id}/stream", ("GET",), handle_pdf_stream, "keys"),
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
    Spec("/_local/inbox/{name}", "/_local/inbox/{name}", ("POST",), handle_inbox_post, "none"),
)
SPECS += tuple(Spec(*route) for route in FILES_ROUTES)  # the Files API, /files/v1 (_files.py)


def build_app(state: ServerState, region: str) -> ASGIApp:
    """The ASGI app serving one region of ``state``."""

    def endpoint_for(spec: Spec) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await _dispatch(state, spec, region, request)

        return endpoint

    # One Route per (path, method) pair keeps each method's spec separate.
    routes = [Route(spec.path, endpoint_for(spec), methods=list(spec.methods)) for spec in SPECS]
    return _TransportAccess(Starlette(routes=routes))
