"""Fixtures for the bulk tests: tiny distinct images the echo engine can read."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image


def tiny_png(i: int) -> bytes:
    """A 4x4 greyscale PNG unique to ``i`` (its bytes spell i) and never blank."""
    im = Image.new("L", (4, 4), 255)
    for n, byte in enumerate(i.to_bytes(4, "big")):
        im.putpixel((n, 0), byte)
    im.putpixel((3, 3), 0)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def make_images(tmp_path: Path) -> Callable[..., list[str]]:
    """``make_images(n, start=0)`` writes n distinct PNGs and returns their paths."""

    def make(n: int, start: int = 0, folder: str = "img") -> list[str]:
        d = tmp_path / folder
        d.mkdir(exist_ok=True)
        paths = []
        for i in range(start, start + n):
            p = d / f"{i}.png"
            p.write_bytes(tiny_png(i))
            paths.append(str(p))
        return paths

    return make


def client_for(server, **kw):  # type: ignore[no-untyped-def]
    from mathpix_nb import Mathpix

    return Mathpix(server.app_id, server.app_key, base_url=server.url, **kw)
