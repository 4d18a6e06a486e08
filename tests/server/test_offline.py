"""The offline engine really reads text (rapidocr + onnxruntime), says it has no math, and
keeps the server responsive while it works."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from mathpix_nb.server import LocalServer

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


def render(lines: list[str], size: int = 32) -> bytes:
    font = ImageFont.load_default(size=size)
    image = Image.new("RGB", (560, 30 + 50 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((16, 16 + 50 * i), line, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def offline() -> LocalServer:
    with LocalServer(engine="offline") as srv:
        yield srv


def test_reads_rendered_words(offline):
    png = render(["Hello offline world", "Invoice 2024"])
    r = httpx.post(
        offline.url + "/v3/text",
        headers=offline.credentials(),
        timeout=120,
        files={"file": ("words.png", png, "image/png")},
        data={"options_json": json.dumps({"include_line_data": True})},
    )
    body = r.json()
    words = body["text"].lower().split()
    for word in ("hello", "offline", "world", "invoice", "2024"):
        assert word in words, body["text"]
    assert body["text"].splitlines()[0].lower().startswith("hello")  # reading order
    assert 0.5 < body["confidence"] <= 1.0
    line_scores = [line["confidence"] for line in body["line_data"]]
    assert body["confidence"] == pytest.approx(sum(line_scores) / len(line_scores))
    assert body["math_recognition"] is False
    assert "no math" in body["version"]


def test_blank_image_has_no_content(offline):
    blank = Image.new("RGB", (200, 80), "white")
    buffer = io.BytesIO()
    blank.save(buffer, "PNG")
    r = httpx.post(
        offline.url + "/v3/text",
        headers=offline.credentials(),
        timeout=120,
        files={"file": ("blank.png", buffer.getvalue(), "image/png")},
    )
    assert r.json()["error_info"]["id"] == "image_no_content"


def test_reads_a_pdf_page(offline):
    import time

    image = Image.open(io.BytesIO(render(["Chapter one"], size=40)))
    pdf = io.BytesIO()
    image.convert("RGB").save(pdf, "PDF", resolution=150)
    keys = offline.credentials()
    with httpx.Client(base_url=offline.url, headers=keys, timeout=120) as http:
        pdf_id = http.post(
            "/v3/pdf", files={"file": ("c.pdf", pdf.getvalue(), "application/pdf")}
        ).json()["pdf_id"]
        deadline = time.monotonic() + 60
        while http.get(f"/v3/pdf/{pdf_id}").json()["status"] not in ("completed", "error"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        mmd = http.get(f"/v3/pdf/{pdf_id}.mmd").text.lower()
    assert "chapter" in mmd and "one" in mmd
