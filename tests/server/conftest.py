"""Fixtures for the local server's tests: images, clients with the server's credentials."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image, ImageDraw

from mathpix_nb.server import LocalServer


def make_png(width: int = 64, height: int = 32, mark: int = 0, blank: bool = False) -> bytes:
    """A small PNG; ``mark`` changes its pixels (and so its sha256)."""
    image = Image.new("RGB", (width, height), "white")
    if not blank:
        draw = ImageDraw.Draw(image)
        draw.rectangle((2, 2, 2 + mark % (width - 4), height // 2), fill=(mark % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def echo_text(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return f"echo {width}x{height} sha:{hashlib.sha256(data).hexdigest()[:12]}"


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture
def png() -> bytes:
    return make_png()


@pytest.fixture
def png_factory() -> Callable[..., bytes]:
    return make_png


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh server per test (tests here change limits, faults and stores)."""
    with LocalServer(engine="echo", regions=("global", "eu")) as srv:
        yield srv


@pytest.fixture
def keys(server: LocalServer) -> dict[str, str]:
    return {"app_id": server.app_id, "app_key": server.app_key}


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
