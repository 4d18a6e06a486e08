"""client.pdf_stream(pdf_id): the pages of a streaming PDF, over loopback, in both framings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mathpix_nb import AsyncMathpix, Mathpix, NotAllowedError, PdfError
from mathpix_nb._pdf_stream import PdfStreamReader
from mathpix_nb.server import LocalServer


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    pages = [Image.new("RGB", (200, 100), (i * 40, 0, 0)) for i in range(4)]
    path = tmp_path / "four.pdf"
    pages[0].save(path, "PDF", save_all=True, append_images=pages[1:])
    return path


@pytest.fixture(params=["sse", "ndjson"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    with LocalServer(
        engine="echo", pdf_step_delay=0.01, latency_base=0.02, pdf_stream_format=request.param
    ) as srv:
        yield srv


def test_pages_come_in_either_framing(server: LocalServer, pdf: Path) -> None:
    with Mathpix(server.app_id, server.app_key, base_url=server.url) as client:
        pdf_id = client.pdf_submit(pdf, streaming=True)
        pages = list(client.pdf_stream(pdf_id))
    assert [p["page_idx"] for p in pages] == [1, 2, 3, 4]
    assert {p["pdf_selected_len"] for p in pages} == {4}
    assert pages[2]["text"].startswith("echo pdf page 3")
    assert {p["pdf_id"] for p in pages} == {pdf_id}


@pytest.mark.anyio
async def test_async_pages_come_in_either_framing(server: LocalServer, pdf: Path) -> None:
    async with AsyncMathpix(server.app_id, server.app_key, base_url=server.url) as client:
        pdf_id = await client.pdf_submit(pdf, streaming=True)
        pages = [p async for p in client.pdf_stream(pdf_id)]
    assert [p["page_idx"] for p in pages] == [1, 2, 3, 4]


def test_stream_errors_are_mapped(local_server: Any, pdf: Path) -> None:
    with Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url) as c:
        pdf_id = c.pdf_submit(pdf)  # without streaming=True
        with pytest.raises(PdfError) as info:
            list(c.pdf_stream(pdf_id))
        assert info.value.error_id == "pdf_streaming_not_enabled"
        with pytest.raises(PdfError) as unknown:
            list(c.pdf_stream("nope"))
        assert unknown.value.error_id == "pdf_unknown_id"
        with pytest.raises(PdfError, match="needs the pdf_id"):
            c.pdf_stream("a/b")


def test_app_token_clients_are_refused_before_sending(local_server: Any) -> None:
    start = len(local_server.log)
    client = Mathpix(app_token="token_abcdefghijklmnop", base_url=local_server.url)
    with client, pytest.raises(NotAllowedError, match="PDF stream"):
        client.pdf_stream("x")
    assert local_server.log[start:] == []


class _Core:
    """The parts of ClientCore the reader uses for decoding (no request is built)."""

    secrets: tuple[str, ...] = ()

    def check_keys(self, what: str) -> None:
        return None


@pytest.mark.parametrize("cut", [1, 3, 7, 1000])
def test_reader_decodes_messages_split_anywhere(cut: int) -> None:
    body = (
        b': keep-alive\n\nevent: page\ndata: {"page_idx": 1, "text": "a"}\n\n'
        b'data: {"page_idx": 2,\ndata: "text": "b"}\r\n\r\n'
        b'{"page_idx": 3, "text": "c"}\n{"page_idx": 4, "text": "d"}'
    )
    reader = PdfStreamReader(_Core(), "p1")  # type: ignore[arg-type]
    got = []
    for i in range(0, len(body), cut):
        got += reader.feed(body[i : i + cut])
    got += reader.finish()
    assert [m["page_idx"] for m in got] == [1, 2, 3, 4]
    assert [m["text"] for m in got] == ["a", "b", "c", "d"]


def test_reader_bounds_one_message_and_maps_error_messages() -> None:
    reader = PdfStreamReader(_Core(), "p1", max_message_bytes=100)  # type: ignore[arg-type]
    with pytest.raises(PdfError, match="larger than 100 bytes"):
        reader.feed(b"x" * 101)
    reader = PdfStreamReader(_Core(), "p1")  # type: ignore[arg-type]
    with pytest.raises(PdfError) as info:
        reader.feed(b'data: {"error": "bad", "error_info": {"id": "pdf_decode_error"}}\n\n')
    assert info.value.error_id == "pdf_decode_error"
    with pytest.raises(PdfError, match="not JSON"):
        reader.feed(b"<html>\n")
