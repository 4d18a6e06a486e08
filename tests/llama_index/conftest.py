"""Fixtures for the LlamaIndex reader tests: small images and PDFs, a team proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")
from PIL import Image, ImageDraw, ImageFont


def write_pdf(path: Path, pages: Sequence[str], size: tuple[int, int] = (800, 300)) -> Path:
    images = []
    for text in pages:
        img = Image.new("RGB", size, "white")
        ImageDraw.Draw(img).text((30, 30), text, fill="black", font=ImageFont.load_default(36))
        images.append(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=100.0)
    return path


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, size: tuple[int, int] = (120, 40)) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", size, "white")
        ImageDraw.Draw(img).rectangle((2, 2, size[0] // 2, size[1] // 2), fill="black")
        img.save(path)
        return path

    return make


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    return lambda name, pages: write_pdf(tmp_path / name, pages)


@pytest.fixture
def creds(local_server: Any) -> dict[str, Any]:
    return {
        "app_id": local_server.app_id,
        "app_key": local_server.app_key,
        "region_urls": dict(local_server.urls),
    }


@pytest.fixture
def team_proxy(local_server: Any) -> Iterator[dict[str, Any]]:
    """A team proxy on loopback: checks the caller's bearer secret, adds the key, forwards."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from mathpix_nb._serving import ThreadedServer

    secret = "team-secret-123"
    seen: list[str] = []

    async def forward(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {secret}":
            return Response('{"error": "no"}', status_code=401, media_type="application/json")
        seen.append(f"{request.method} {request.url.path}")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "authorization", "content-length")
        }
        headers.update({"app_id": local_server.app_id, "app_key": local_server.app_key})
        async with httpx.AsyncClient(base_url=local_server.url, timeout=30) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        keep = {"content-type": answer.headers.get("content-type", "application/json")}
        return Response(answer.content, status_code=answer.status_code, headers=keep)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])
    with ThreadedServer(app) as server:
        yield {"url": server.url, "secret": secret, "seen": seen}
