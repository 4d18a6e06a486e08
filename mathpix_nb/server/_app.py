"""The ASGI application: Mathpix v3 routes over the shared server state.

A small router of our own (not Starlette's) so that every answer looks like Mathpix's:

* unknown paths get a JSON 404 envelope (``http_not_found``), a known path with the wrong
  method a JSON 405 (``http_method_not_allowed``) with ``Allow``; ``POST /v3/pdf/`` is
  ``POST /v3/pdf`` (trailing slashes are ignored, never redirected);
* CORS on every answer, and ``OPTIONS`` preflights answered for any path (browser pages
  call Mathpix directly with ``app_token`` / ``strokes_session_id`` headers);
* the body is read as a stream and reading stops at the route's size limit.

Every route then goes through ``_dispatch``, which draws a fault, authenticates, applies the
per-minute rate limit, calls the handler and writes one ``RequestRecord``. Handlers return a
``Reply`` (body + status); nothing here knows about threads or ports.

Other modules add routes with ``register_routes(Spec(...), ...)`` before a server starts
(the Files API module does); ``build_app`` serves ``SPECS`` plus everything registered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from ._core import (
    Call,
    Handler,
    Reply,
    ServerState,
    envelope,
    error,
    parse_json_object,
    unauthorized,
)
from ._documents import (
    handle_batch_get,
    handle_batch_new,
    handle_converter_delete,
    handle_converter_get,
    handle_converter_new,
    handle_converter_results,
    handle_export,
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

#: Request headers a browser page may send (answered in every preflight, plus whatever the
#: preflight asks for).
CORS_ALLOW_HEADERS = (
    "app_id",
    "app_key",
    "app_token",
    "strokes_session_id",
    "content-type",
    "accept",
    "idempotency-key",
)
CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_EXPOSE_HEADERS = "Retry-After, Content-Disposition, X-Mathpix-Converter, X-Request-Id"
CORS_MAX_AGE = "600"


@dataclass(frozen=True)
class Spec:
    """One route: ``path`` is a Starlette-style template (``/v3/pdf/{name}``), ``endpoint``
    the template written to the log, ``auth`` one of ``"keys"`` (``app_id`` + ``app_key``),
    ``"group"`` (the docs ask for both, Mathpix's own CLI and docs examples send ``app_key``
    alone: accepted unless ``app_key_only="docs"``), ``"key"`` (``app_key``, with or without
    ``app_id``), ``"keys_or_token"`` (keys or an ``app_token``) or ``"none"``.

    ``body_limit`` is a ``ServerConfig`` field name or a byte count: reading the body stops
    there with ``sys_request_too_large``. ``request_ids``: error bodies of this route carry
    a ``request_id`` (the image endpoints)."""

    path: str
    endpoint: str
    methods: tuple[str, ...]
    handler: Handler
    auth: str
    metered: bool = False
    body_limit: str | int = "max_body_bytes"
    request_ids: bool = False


_EXTRA_SPECS: list[Spec] = []


def register_routes(*specs: Spec) -> None:
    """Add routes to every app ``build_app`` makes from now on (e.g. the Files API).

    A spec whose (path, method) pair is already registered replaces the older one, so a
    module can be re-imported without doubling its routes."""
    for spec in specs:
        for i, old in enumerate(_EXTRA_SPECS):
            if old.path == spec.path and set(old.methods) & set(spec.methods):
                _EXTRA_SPECS[i] = spec
                break
        else:
            _EXTRA_SPECS.append(spec)


def registered_routes() -> tuple[Spec, ...]:
    """``SPECS`` plus everything added with ``register_routes``, in matching order."""
    return (*SPECS, *_EXTRA_SPECS)


# --------------------------------------------------------------------------- auth, limits


def _key_alone_ok(mode: str, scheme: str) -> bool:
    """May ``app_key`` without ``app_id`` authenticate a route of this ``scheme``?"""
    if scheme == "key" or mode == "everywhere":
        return True
    return scheme == "group" and mode == "accept"


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
        if app_id is None and not _key_alone_ok(state.config.app_key_only, scheme):
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
            call.token = info
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


def _body_limit(state: ServerState, spec: Spec) -> int:
    if isinstance(spec.body_limit, int):
        return spec.body_limit
    limit: int = getattr(state.config, spec.body_limit)
    return limit


async def _read_body(request: Request, limit: int) -> tuple[bytes, int, bool]:
    """(body, bytes read, too large). Stops reading as soon as the body passes ``limit``
    (a declared ``Content-Length`` above it is refused before reading anything); uvicorn
    discards the rest of an unread body after the answer, without buffering it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"", 0, True
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.clear()
            return b"", size, True
        if chunk:
            chunks.append(chunk)
    return b"".join(chunks), size, False


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
            bytes_received=call.bytes_received,
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
    try:
        body, received, too_large = await _read_body(request, _body_limit(state, spec))
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening any more
    call = Call(request, region, spec.endpoint, body, state)
    call.bytes_received = received
    try:
        if too_large:
            limit = _body_limit(state, spec)
            rid = state.new_request_id() if spec.request_ids else None
            call.request_id = rid
            reply = error(
                "sys_request_too_large",
                f"Request body is larger than {limit} bytes",
                status=state.config.too_large_status,
                request_id=rid,
            )
        else:
            handled = await _handle(state, spec, call, request, body, started, t0)
            if handled is None:  # the connection was dropped on purpose
                return Response(status_code=500)  # never sent: the connection is gone
            reply = handled
    except Exception:
        logger.exception("local server bug while handling %s %s", request.method, request.url.path)
        reply = error("sys_exception", "Internal server error", status=500)
    if not spec.endpoint.startswith("/_local/"):
        _log(state, call, reply, started, t0)
    return reply.response()


async def _handle(
    state: ServerState,
    spec: Spec,
    call: Call,
    request: Request,
    body: bytes,
    started: float,
    t0: float,
) -> Reply | None:
    key = _fault_key(request, body)
    uses_token = "app_token" in request.headers and "app_key" not in request.headers
    call.fault = state.faults.decide(spec.endpoint, key, uses_token)
    if call.fault == "drop" and "mathpix_nb.close_transport" in request.scope:
        _log(state, call, None, started, t0)  # before the client can see the drop
        await _drop_connection(request.scope)
        return None
    if call.fault in ("drop", "http_5xx"):
        fault_status = state.faults.faults.status_5xx if state.faults.faults else 503
        return _gateway_error(502 if call.fault == "drop" else fault_status)
    if call.fault == "slow" and state.faults.faults is not None:
        await anyio.sleep(state.faults.faults.slow_seconds)
    reply = _authenticate(state, call, spec.auth) or Reply(None)
    if reply.body is None and call.fault == "sys_exception":
        call.request_id = state.new_request_id()
        reply = error("sys_exception", "Server error, please try again", request_id=call.request_id)
    if reply.body is None and spec.metered:
        reply = _rate_limit(state) or reply
    if reply.body is None:
        reply = await spec.handler(state, call)
    return reply


# --------------------------------------------------------------------------- router + CORS


class _Route:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.regex, _, self.convertors = compile_path(spec.path)

    def match(self, path: str) -> dict[str, Any] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        return {k: self.convertors[k].convert(v) for k, v in found.groupdict().items()}


def _cors_origin(state: ServerState, origin: str | None) -> str | None:
    allowed = state.config.cors_allow_origins
    if "*" in allowed:
        return "*"
    if origin is not None and origin in allowed:
        return origin
    return None


def _cors_headers(state: ServerState, scope: Scope) -> dict[str, str]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    origin = _cors_origin(state, headers.get("origin"))
    if origin is None:
        return {}
    out = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
    }
    if origin != "*":
        out["Vary"] = "Origin"
    return out


def _preflight(state: ServerState, scope: Scope) -> Response:
    """``OPTIONS``: 204 with what a browser needs to send the real request."""
    headers = _cors_headers(state, scope)
    if headers:
        request_headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        asked = [
            h.strip().lower()
            for h in request_headers.get("access-control-request-headers", "").split(",")
            if h.strip()
        ]
        allow = list(dict.fromkeys([*CORS_ALLOW_HEADERS, *asked]))
        headers.update(
            {
                "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
                "Access-Control-Allow-Headers": ", ".join(allow),
                "Access-Control-Max-Age": CORS_MAX_AGE,
            }
        )
        headers.pop("Access-Control-Expose-Headers", None)
    headers["Allow"] = CORS_ALLOW_METHODS
    return Response(status_code=204, headers=headers)


def _not_found(path: str) -> Reply:
    if path.startswith("/files/"):
        # the Files API answers with the machine id in "error" (see the API reference)
        body = {
            "error": "not_found",
            "error_info": {"id": "not_found", "message": f"No route {path}"},
        }
        return Reply(body, status=404)
    return Reply(envelope("http_not_found", f"Not found: {path}"), status=404)


def _not_allowed(path: str, method: str, allowed: list[str]) -> Reply:
    message = f"Method {method} is not allowed on {path}; use {', '.join(allowed)}"
    reply = Reply(envelope("http_method_not_allowed", message), status=405)
    reply.headers["Allow"] = ", ".join([*allowed, "OPTIONS"])
    return reply


class MathpixApp:
    """The ASGI app of one region: routing, CORS, preflights and JSON 404/405 answers."""

    def __init__(self, state: ServerState, region: str, specs: tuple[Spec, ...]) -> None:
        self.state = state
        self.region = region
        self.routes = [_Route(spec) for spec in specs]

    def _find(self, path: str, method: str) -> tuple[_Route | None, dict[str, Any], list[str]]:
        wanted = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if wanted in route.spec.methods:
                return route, params, allowed
            allowed.extend(m for m in route.spec.methods if m not in allowed)
        return None, {}, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        method = scope["method"]
        cors = _cors_headers(self.state, scope)
        if method == "OPTIONS":  # logged as "(preflight)", never under an API endpoint
            started, t0 = time.time(), time.monotonic()
            response = _preflight(self.state, scope)
            call = Call(Request(scope, receive), self.region, "(preflight)", b"", self.state)
            _log(self.state, call, Reply(None, status=response.status_code), started, t0)
            await response(scope, receive, send)
            return
        route, params, allowed = self._find(path, method)
        if route is None:
            request = Request(scope, receive)
            reply = _not_allowed(path, method, allowed) if allowed else _not_found(path)
            started, t0 = time.time(), time.monotonic()
            call = Call(request, self.region, "(unknown)", b"", self.state)
            _log(self.state, call, reply, started, t0)
            response = reply.response()
        else:
            request = Request({**scope, "path_params": params}, receive)
            response = await _dispatch(self.state, route.spec, self.region, request)
        for name, value in cors.items():
            response.headers[name] = value
        await response(scope, receive, send)


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
        return Reply(envelope("http_not_found", "No such hosted file"), status=404)
    data, content_type = found
    return Reply(data, media_type=content_type)


async def handle_inbox_post(state: ServerState, call: Call) -> Reply:
    """A sink for callbacks (batch ``callback.post``), read back with ``server.inbox(name)``."""
    parsed = parse_json_object(call.body, state) if call.body.strip() else None
    payload: Any = parsed
    if isinstance(parsed, Reply):  # not a JSON object: keep what came, as text or JSON
        import json

        try:
            payload = json.loads(call.body)
        except (ValueError, RecursionError):
            payload = call.body.decode("utf-8", "replace")
    headers = {k: v for k, v in call.request.headers.items()}
    state.post_inbox(call.request.path_params["name"], {"json": payload, "headers": headers})
    return Reply({"ok": True})


async def handle_health(state: ServerState, call: Call) -> Reply:
    return Reply(
        {
            "server": "mathpix_nb local Mathpix-compatible API",
            "region": call.region,
            "engine": state.engine.name,
        }
    )


def _pdf_upload(path: str) -> Spec:
    return Spec(path, path, ("POST",), handle_pdf_new, "group", True, "max_pdf_bytes")


SPECS: tuple[Spec, ...] = (
    # images and ink
    Spec("/v3/text", "/v3/text", ("POST",), handle_text, "keys_or_token", True, request_ids=True),
    Spec(
        "/v3/latex", "/v3/latex", ("POST",), handle_latex, "keys_or_token", True, request_ids=True
    ),
    Spec(
        "/v3/strokes",
        "/v3/strokes",
        ("POST",),
        handle_strokes,
        "keys_or_token",
        True,
        "max_strokes_bytes",
        request_ids=True,
    ),
    Spec("/v3/ocr-results", "/v3/ocr-results", ("GET",), handle_ocr_results, "key"),
    Spec("/v3/ocr-usage", "/v3/ocr-usage", ("GET",), handle_ocr_usage, "group"),
    # app tokens
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
    # documents
    _pdf_upload("/v3/pdf"),
    _pdf_upload("/v3/pdf-file"),
    Spec(
        "/v3/pdf/{pdf_id}/stream", "/v3/pdf/{pdf_id}/stream", ("GET",), handle_pdf_stream, "group"
    ),
    Spec("/v3/pdf/{name}", "/v3/pdf/{pdf_id}", ("GET",), handle_pdf_get, "group"),
    Spec("/v3/pdf/{name}", "/v3/pdf/{pdf_id}", ("DELETE",), handle_pdf_delete, "group"),
    Spec("/v3/pdf-results", "/v3/pdf-results", ("GET",), handle_pdf_results, "key"),
    Spec(
        "/v3/converter",
        "/v3/converter",
        ("POST",),
        handle_converter_new,
        "group",
        True,
        "max_converter_bytes",
    ),
    Spec(
        "/v3/converter/{name}",
        "/v3/converter/{conversion_id}",
        ("GET",),
        handle_converter_get,
        "group",
    ),
    Spec(
        "/v3/converter/{name}",
        "/v3/converter/{conversion_id}",
        ("DELETE",),
        handle_converter_delete,
        "group",
    ),
    Spec(
        "/v3/converter-results", "/v3/converter-results", ("GET",), handle_converter_results, "key"
    ),
    Spec(
        "/v1/export/{kind:path}",
        "/v1/export/{kind}",
        ("POST",),
        handle_export,
        "group",
        True,
        "max_converter_bytes",
    ),
    Spec("/v3/batch", "/v3/batch", ("POST",), handle_batch_new, "keys", metered=True),
    Spec("/v3/batch/{batch_id}", "/v3/batch/{batch_id}", ("GET",), handle_batch_get, "keys"),
    # local extras (no auth)
    Spec("/_local/files/{name}", "/_local/files/{name}", ("GET",), handle_file, "none"),
    Spec("/_local/health", "/_local/health", ("GET",), handle_health, "none"),
    Spec("/_local/inbox/{name}", "/_local/inbox/{name}", ("POST",), handle_inbox_post, "none"),
)
SPECS += tuple(Spec(*route) for route in FILES_ROUTES)  # the Files API, /files/v1 (_files.py)


def build_app(state: ServerState, region: str) -> ASGIApp:
    """The ASGI app serving one region of ``state``: ``SPECS`` and the registered routes."""
    return _TransportAccess(MathpixApp(state, region, registered_routes()))
