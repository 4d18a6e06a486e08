"""Fixtures for the client tests: both clients behind one awaitable facade, local servers,
a small token endpoint (the ``token_url`` proxy pattern) and image makers."""

from __future__ import annotations

import hashlib
import inspect
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from mathpix_nb import AsyncMathpix, Mathpix, MathpixError

server_mod = pytest.importorskip("mathpix_nb.server")
LocalServer = server_mod.LocalServer


class Api:
    """One interface over ``Mathpix`` and ``AsyncMathpix`` so each scenario is written once."""

    def __init__(self, client: Mathpix | AsyncMathpix) -> None:
        self.client = client
        self.is_async = isinstance(client, AsyncMathpix)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def text(self, *args: Any, **kwargs: Any) -> Any:
        return await self.call("text", *args, **kwargs)

    async def results(self, **filters: Any) -> list[dict[str, Any]]:
        iterator = self.client.ocr_results(**filters)
        if self.is_async:
            return [item async for item in iterator]  # type: ignore[union-attr]
        return list(iterator)  # type: ignore[arg-type]

    async def close(self) -> None:
        if isinstance(self.client, AsyncMathpix):
            await self.client.aclose()
        else:
            self.client.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make(kind: str) -> AsyncIterator[Callable[..., Api]]:
    """Build a client of the parametrized kind; closed after the test."""
    made: list[Api] = []

    def factory(*args: Any, **kwargs: Any) -> Api:
        cls = Mathpix if kind == "sync" else AsyncMathpix
        api = Api(cls(*args, **kwargs))
        made.append(api)
        return api

    yield factory
    for api in made:
        await api.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """A private echo server (regions global + eu) whose settings tests may change."""
    with LocalServer(engine="echo", regions=("global", "eu"), token_min_expires=1) as srv:
        yield srv


@pytest.fixture
def srv(server: Any) -> Iterator[Any]:
    """``server`` with a clean log and default behaviour before and after each test."""
    defaults = dict(
        faults=None,
        rate_limit_per_minute=None,
        retry_after_header=False,
        monthly_quota=None,
        expired_token_mode="200",
        latency_base=0.0,
        async_delay=0.0,
        pdf_not_ready_status=404,
    )
    server.configure(**defaults)
    server.clear_log()
    yield server
    server.configure(**defaults)


@pytest.fixture
def fresh() -> Iterator[Any]:
    """A new server per test: for rate limits and quotas, which count every earlier request."""
    with LocalServer(engine="echo", regions=("global",)) as srv:
        yield srv


def keys(srv: Any, **kwargs: Any) -> dict[str, Any]:
    """Client keyword arguments for key auth against ``srv`` (fast retries for tests)."""
    return dict(app_id=srv.app_id, app_key=srv.app_key, region_urls=srv.urls, **kwargs)


def text_image(width: int = 320, height: int = 80, label: str = "x^2 + y^2") -> Image.Image:
    """A small non-blank image (the echo engine answers image_no_content for blank ones)."""
    im = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(im).text((10, height // 3), label, fill="black")
    return im


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def sha12(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def scan_for_secrets(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]!r}"


def error_text(exc: MathpixError) -> list[str]:
    return [str(exc), repr(exc), str(exc.args)]


# -- a token endpoint (the proxy pattern): Bearer-authenticated, mints from LocalServer ------
class TokenEndpoint:
    """POST /token with ``Authorization: Bearer <secret>`` -> a Mathpix app token."""

    def __init__(
        self, upstream: Any, secret: str, region: str = "global", busy_first: int = 0
    ) -> None:
        self.upstream = upstream
        self.secret = secret
        self.region = region
        self.busy_first = busy_first  # answer 429 + Retry-After to the first N calls
        self.calls = 0
        self.refused = 0
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
            if self.refused < self.busy_first:
                self.refused += 1
                return JSONResponse(
                    {"error": "slow down"}, status_code=429, headers={"Retry-After": "0"}
                )
            self.calls += 1
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    self.upstream.urls[self.region] + "/v3/app-tokens",
                    headers={"app_key": self.upstream.app_key},
                    json={"expires": body.get("expires", 300)},
                )
            return JSONResponse(answer.json(), status_code=answer.status_code)

        return Starlette(routes=[Route("/token", token, methods=["POST"])])

    def __enter__(self) -> TokenEndpoint:
        from mathpix_nb._serving import ThreadedServer

        self._server = ThreadedServer(self.app()).start()
        self.url = f"{self._server.url}/token"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
