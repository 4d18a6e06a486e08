"""Fixtures for the LangChain loader tests: small images and PDFs made on the fly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
PIL = pytest.importorskip("PIL")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402


def text_page(text: str, size: tuple[int, int] = (900, 300), font_size: int = 36) -> Image.Image:
    """A white page with dark, large text lines: easy for a real OCR engine to read."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    y = 30
    for line in text.split("\n"):
        draw.text((30, y), line, fill="black", font=font)
        y += int(font_size * 1.6)
    return img


def write_pdf(path: Path, pages: Sequence[str], size: tuple[int, int] = (1000, 700)) -> Path:
    """A multi-page PDF (Pillow saves image pages as PDF), one text block per page."""
    images = [text_page(t, size=size) for t in pages]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=100.0)
    return path


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a small PNG whose size makes it recognisable in the echo engine's answer."""

    def make(name: str, size: tuple[int, int] = (120, 40), text: str = "x") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(img)
        draw.rectangle((2, 2, size[0] // 2, size[1] // 2), fill="black")  # never blank
        draw.text((4, size[1] // 2), text, fill="black", font=ImageFont.load_default(size=12))
        img.save(path)
        return path

    return make


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, pages: Sequence[str]) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_pdf(path, pages)

    return make


@pytest.fixture
def creds(local_server: Any) -> dict[str, Any]:
    """Keyword arguments that point a loader at the shared echo server (both regions)."""
    return {
        "app_id": local_server.app_id,
        "app_key": local_server.app_key,
        "region_urls": dict(local_server.urls),
    }
