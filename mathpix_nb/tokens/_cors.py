"""CORS for the team service (``/token`` and the proxy): an operator-set list of origins.

Default: no origin is allowed, so no CORS header is ever sent and browsers keep pages of
other sites from reading answers. With origins configured, an allowed origin gets
``Access-Control-Allow-Origin: <that origin>`` (``*`` only if the operator listed ``*``),
``Vary: Origin`` and the exposed headers a Mathpix client reads. Preflights (``OPTIONS`` with
``Access-Control-Request-Method``) are answered here: 204 with the allowed methods and
headers for an allowed origin and method, 403 without CORS headers otherwise.
``Access-Control-Allow-Credentials`` is never sent: callers authenticate with a bearer header
the page sets itself, never with cookies, and no request header is ever echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

ALLOWED_METHODS = "GET, POST, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, Accept, strokes_session_id"
EXPOSED_HEADERS = "Retry-After, Content-Disposition, X-Mathpix-Converter, X-Request-Id"
MAX_AGE = "600"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class CorsMiddleware:
    """Pure ASGI (streams pass through untouched); ``origins`` exact, e.g. https://app.x.org."""

    def __init__(self, app: Any, *, origins: Collection[str] = ()) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)

    def _allowed(self, origin: str | None) -> str | None:
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.origins:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        allow = self._allowed(origin)
        wanted = _header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and origin and wanted:
            await self._preflight(send, allow, wanted.upper())
            return

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
                headers.append((b"vary", b"Origin"))
                if allow is not None:
                    headers.append((b"access-control-allow-origin", allow.encode("latin-1")))
                    headers.append((b"access-control-expose-headers", EXPOSED_HEADERS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Any, allow: str | None, wanted: str) -> None:
        if allow is None or wanted not in {m.strip() for m in ALLOWED_METHODS.split(",")}:
            why = "origin not allowed" if allow is None else f"method {wanted} not allowed"
            body = json.dumps(
                {"error": f"CORS preflight refused: {why}", "error_info": {"id": "http_forbidden"}}
            ).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"vary", b"Origin"),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [
            (b"access-control-allow-origin", allow.encode("latin-1")),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
