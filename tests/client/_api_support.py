"""Helpers for the tests of the rest of the API (tests/client/test_api_*.py): a team proxy and
a token endpoint that passes strokes sessions through, both real HTTP servers in front of a
LocalServer, and a recorder of the requests a client sends (its own httpx event hooks)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx

from mathpix_nb._serving import ThreadedServer


class TeamProxy:
    """The team-proxy pattern: ``Authorization: Bearer <secret>`` in, the key added upstream.

    Every ``/v3/...`` request is forwarded unchanged (method, query, body) to ``upstream``
    with ``app_id``/``app_key`` and without the caller's ``Authorization``."""

    def __init__(self, upstream: Any, secret: str, region: str = "global") -> None:
        self.upstream, self.secret, self.region = upstream, secret, region
        self.forwarded: list[str] = []
        self.refused = 0
        self._server: Any = None
        self.url = ""

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def forward(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.secret}":
                self.refused += 1
                return JSONResponse(
                    {"error": "unauthorized", "error_info": {"id": "http_unauthorized"}},
                    status_code=401,
                )
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("content-type", "accept", "user-agent")
            }
            headers.update(app_id=self.upstream.app_id, app_key=self.upstream.app_key)
            path = request.url.path
            self.forwarded.append(f"{request.method} {path}")
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.request(
                    request.method,
                    self.upstream.urls[self.region] + path,
                    params=list(request.query_params.multi_items()),
                    content=await request.body(),
                    headers=headers,
                )
            keep = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "retry-after")
            }
            return Response(answer.content, status_code=answer.status_code, headers=keep)

        methods = ["GET", "POST", "DELETE"]
        return Starlette(routes=[Route("/v3/{rest:path}", forward, methods=methods)])

    def __enter__(self) -> TeamProxy:
        self._server = ThreadedServer(self.app()).start()
        self.url = self._server.url
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class SessionTokenEndpoint:
    """A ``token_url`` endpoint that passes ``include_strokes_session_id`` through to
    Mathpix's ``v3/app-tokens`` (the token-endpoint protocol plus strokes sessions)."""

    def __init__(self, upstream: Any, secret: str) -> None:
        self.upstream, self.secret = upstream, secret
        self.bodies: list[dict[str, Any]] = []
        self._server: Any = None
        self.url = ""

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def token(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.secret}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            body = await request.json() if await request.body() else {}
            self.bodies.append(body)
            upstream = {"expires": body.get("expires", 300)}
            if body.get("include_strokes_session_id"):
                upstream["include_strokes_session_id"] = True
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    self.upstream.url + "/v3/app-tokens",
                    headers={"app_key": self.upstream.app_key},
                    json=upstream,
                )
            return JSONResponse(answer.json(), status_code=answer.status_code)

        return Starlette(routes=[Route("/token", token, methods=["POST"])])

    def __enter__(self) -> SessionTokenEndpoint:
        self._server = ThreadedServer(self.app()).start()
        self.url = f"{self._server.url}/token"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class Recorder:
    """The requests a client sends, seen through its own ``http_client`` event hooks."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def sync_client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.requests.append]})

    def async_client(self) -> httpx.AsyncClient:
        async def hook(request: httpx.Request) -> None:
            self.requests.append(request)

        return httpx.AsyncClient(event_hooks={"request": [hook]})

    def client_for(self, kind: str) -> Any:
        return self.async_client() if kind == "async" else self.sync_client()

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.to(path)]


def pdf_bytes(pages: int = 1) -> bytes:
    from PIL import Image

    images = [Image.new("RGB", (200, 100), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


async def close_http(http: Any) -> None:
    if isinstance(http, httpx.AsyncClient):
        await http.aclose()
    else:
        http.close()
