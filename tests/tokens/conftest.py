"""Fixtures for the token service: a LocalServer that mints short-lived tokens, the service
itself under uvicorn on 127.0.0.1, and a tiny fake JupyterHub API over loopback HTTP."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ALICE = "alice-secret-0123456789abcdef"
BOB = "bob-secret-fedcba9876543210xyz"
HUB_TOKENS = {
    "hub-token-ana": {"kind": "user", "name": "ana", "groups": ["physics"]},
    "hub-token-ben": {"kind": "user", "name": "ben", "groups": []},
    "hub-token-svc": {"kind": "service", "name": "cull-idle"},
}


@pytest.fixture(scope="session")
def http() -> Iterator[Any]:
    """One httpx client for the whole session (making a client costs ~0.1 s of TLS setup)."""
    import httpx

    with httpx.Client(timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    """A LocalServer (regions global + eu) that allows token lifetimes of one second."""
    from mathpix_nb.server import LocalServer

    with LocalServer(engine="echo", regions=("global", "eu"), token_min_expires=1) as server:
        yield server


@pytest.fixture
def start_service(upstream: Any) -> Iterator[Callable[..., Any]]:
    """``start_service(**create_app_kwargs)`` -> a running ThreadedServer (stopped afterwards)."""
    from mathpix_nb.tokens import ThreadedServer, create_app

    running: list[Any] = []

    def start(**kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "app_id": upstream.app_id,
            "app_key": upstream.app_key,
            "region_urls": upstream.urls,
            "callers": {"alice": ALICE, "bob": BOB},
        }
        options.update(kwargs)
        server = ThreadedServer(create_app(**options)).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture(scope="module")
def shared_service(upstream: Any) -> Iterator[Any]:
    """One service for tests that only read (refusals, bad bodies): fewer server starts."""
    from mathpix_nb.tokens import ThreadedServer, create_app

    app = create_app(
        app_id=upstream.app_id,
        app_key=upstream.app_key,
        region_urls=upstream.urls,
        callers={"alice": ALICE, "bob": BOB},
        rate_limit_per_minute=1000,
    )
    with ThreadedServer(app) as server:
        yield server


class _FakeHub(BaseHTTPRequestHandler):
    """Answers GET /hub/api/user like JupyterHub: the token owner's model, or 403."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        model = HUB_TOKENS.get(token) if scheme == "token" else None
        if self.path != "/hub/api/user" or model is None:
            self._send(403, {"status": 403, "message": "Forbidden"})
        else:
            self._send(200, model)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def fake_hub() -> Iterator[Any]:
    """A fake hub on 127.0.0.1; ``.api_url`` and ``.seen`` (Authorization headers received)."""
    handler = type("Hub", (_FakeHub,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.api_url = f"http://127.0.0.1:{httpd.server_address[1]}/hub/api"  # type: ignore[attr-defined]
    httpd.seen = handler.seen  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (120, 40), "white")
    ImageDraw.Draw(image).text((5, 10), "x^2 + 1", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    """A real two-page PDF (Pillow writes it)."""
    from PIL import Image, ImageDraw

    pages = []
    for n in (1, 2):
        page = Image.new("RGB", (300, 200), "white")
        ImageDraw.Draw(page).text((20, 80), f"page {n}: a + b = c", fill="black")
        pages.append(page)
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


@pytest.fixture(scope="module")
def proxy_service(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One proxy-mode service process (callers alice and bob) over the module's upstream."""
    from mathpix_nb.tokens import hash_secret

    from .proxy_support import start_python

    log = tmp_path_factory.mktemp("proxy") / "service.log"
    service = start_python(
        upstream,
        log,
        base_url=upstream.urls["global"],
        callers={"alice": hash_secret(ALICE), "bob": hash_secret(BOB)},
        proxy=True,
        state_db=str(log.with_name("state.sqlite3")),
        proxy_rate_limit_per_minute=100_000,
    )
    yield service
    service.stop()
