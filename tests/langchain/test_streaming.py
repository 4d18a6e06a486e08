"""Page mode yields each PDF page as soon as Mathpix has it (v3/pdf/{id}/stream), in page order,
with polling as the fallback when the stream breaks, ends early or is not served.

The local server paces pages with ``latency_base`` (seconds per page); a purpose-built
loopback server sends pages out of order or ends a stream early.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb import AsyncMathpix, ConfigurationError, Mathpix
from mathpix_nb.langchain import MathpixLoader
from mathpix_nb.server import Faults, LocalServer

STREAM = "/v3/pdf/{pdf_id}/stream"


def paths(server: Any, start: int) -> list[str]:
    return [f"{r.method} {r.endpoint}" for r in server.log[start:]]


@pytest.fixture(scope="module")
def slow_pages() -> Iterator[LocalServer]:
    """Each page takes 0.15 s: a PDF is done long after its first page."""
    with LocalServer(engine="echo", latency_base=0.15, pdf_step_delay=0.01) as server:
        yield server


def kw(server: LocalServer, **more: Any) -> dict[str, Any]:
    return {
        "app_id": server.app_id,
        "app_key": server.app_key,
        "base_url": server.url,
        "cache": False,
        **more,
    }


def test_first_page_is_yielded_while_the_rest_is_converting(
    slow_pages: LocalServer, make_pdf: Any
) -> None:
    pdf = make_pdf("eight.pdf", [f"page {i}" for i in range(8)])
    start = len(slow_pages.log)
    loader = MathpixLoader(pdf, mode="page", **kw(slow_pages))
    docs = loader.lazy_load()

    first = next(docs)
    with Mathpix(slow_pages.app_id, slow_pages.app_key, base_url=slow_pages.url) as client:
        status = client.pdf_status(first.metadata["pdf_id"])
    # The user holds page 1 while Mathpix is still working on the others.
    assert status["status"] != "completed"
    assert status["num_pages_completed"] < 8
    rest = list(docs)

    assert [d.metadata["page"] for d in [first, *rest]] == list(range(8))
    assert all("echo pdf page" in d.page_content for d in [first, *rest])
    assert [d.metadata["page_label"] for d in rest][-1] == "8"
    seen = paths(slow_pages, start)
    assert seen.count(f"GET {STREAM}") == 1
    assert not any(p.endswith(".{ext}") or "lines.json" in p for p in seen)  # no download


@pytest.mark.anyio
async def test_async_first_page_is_yielded_while_the_rest_is_converting(
    slow_pages: LocalServer, make_pdf: Any
) -> None:
    pdf = make_pdf("eight_async.pdf", [f"async {i}" for i in range(8)])
    loader = MathpixLoader(pdf, mode="page", **kw(slow_pages))
    docs = loader.alazy_load()
    first = await docs.__anext__()
    async with AsyncMathpix(
        slow_pages.app_id, slow_pages.app_key, base_url=slow_pages.url
    ) as client:
        status = await client.pdf_status(first.metadata["pdf_id"])
    assert status["status"] != "completed"
    rest = [d async for d in docs]
    assert [d.metadata["page"] for d in [first, *rest]] == list(range(8))


@pytest.mark.anyio
async def test_async_streams_with_a_sync_client_in_threads(
    slow_pages: LocalServer, make_pdf: Any
) -> None:
    pdf = make_pdf("threads.pdf", ["a", "b", "c"])
    with Mathpix(slow_pages.app_id, slow_pages.app_key, base_url=slow_pages.url) as client:
        loader = MathpixLoader(pdf, mode="page", client=client, cache=False)
        docs = [d async for d in loader.alazy_load()]
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]


@pytest.mark.parametrize(
    "faults",
    [
        Faults(drop=1.0, endpoints=(STREAM,)),  # the connection is closed, no answer
        Faults(http_5xx=1.0, endpoints=(STREAM,)),  # the stream is not served
    ],
    ids=["dropped", "http_5xx"],
)
def test_a_broken_stream_falls_back_to_polling(make_pdf: Any, faults: Faults) -> None:
    pdf = make_pdf("fallback.pdf", ["one", "two", "three"])
    with LocalServer(engine="echo", pdf_step_delay=0.01, faults=faults) as server:
        docs = MathpixLoader(pdf, mode="page", max_retries=0, **kw(server)).load()
        seen = paths(server, 0)
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]
    assert [d.page_content for d in docs] == [
        f"echo pdf page {n} sha:" + d.page_content[-12:]
        for n, d in zip((1, 2, 3), docs, strict=True)
    ]
    assert "GET /v3/pdf/{pdf_id}" in seen  # polled the status
    assert any(p.startswith("GET /v3/pdf/{") and p != f"GET {STREAM}" for p in seen)
    assert docs[0].metadata["confidence"] == 1.0  # the pages came from lines.json


def test_stream_false_waits_for_the_whole_pdf(slow_pages: LocalServer, make_pdf: Any) -> None:
    pdf = make_pdf("whole.pdf", ["x", "y"])
    start = len(slow_pages.log)
    docs = MathpixLoader(pdf, mode="page", stream=False, **kw(slow_pages)).load()
    assert f"GET {STREAM}" not in paths(slow_pages, start)
    assert [d.metadata["page"] for d in docs] == [0, 1]
    assert docs[0].metadata["confidence"] == 1.0


def test_page_ranges_the_stream_cannot_number_use_polling(
    local_server: Any, creds: dict[str, Any], make_pdf: Any
) -> None:
    pdf = make_pdf("ranges.pdf", ["p1", "p2", "p3", "p4"])
    start = len(local_server.log)
    docs = MathpixLoader(
        pdf, mode="page", pdf_options={"page_ranges": "2 - -2"}, cache=False, **creds
    ).load()
    assert [d.metadata["page_label"] for d in docs] == ["2", "3"]
    assert f"GET {STREAM}" not in paths(local_server, start)
    with pytest.raises(ConfigurationError, match="stream=True needs page_ranges in ascending"):
        MathpixLoader(pdf, mode="page", stream=True, pdf_options={"page_ranges": "3,1"}, **creds)


# -- a server that streams out of order, or stops early -------------------------------------


@pytest.fixture
def odd_stream() -> Iterator[dict[str, Any]]:
    """A small Mathpix-shaped PDF API: the stream sends ``state["order"]`` pages (1-based,
    any order), then ends; status says completed; lines.json has every page."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from mathpix_nb._serving import ThreadedServer

    state: dict[str, Any] = {"order": [1, 2, 3], "submitted": [], "requests": []}

    async def submit(request: Request) -> Response:
        form = await request.form()
        state["submitted"].append(json.loads(str(form["options_json"])))
        return JSONResponse({"pdf_id": "odd1"})

    async def stream(request: Request) -> Response:
        state["requests"].append("stream")

        async def body() -> Any:
            for n in state["order"]:
                yield (
                    json.dumps(
                        {
                            "text": f"stream page {n}",
                            "page_idx": n,
                            "pdf_selected_len": 3,
                            "pdf_id": "odd1",
                            "version": "odd-1",
                        }
                    )
                    + "\n"
                )

        return StreamingResponse(body(), media_type="application/x-ndjson")

    async def status(request: Request) -> Response:
        state["requests"].append("status")
        return JSONResponse({"status": "completed", "num_pages": 3, "pdf_id": "odd1"})

    async def download(request: Request) -> Response:
        state["requests"].append(request.path_params["name"])
        pages = [
            {"page": n, "lines": [{"text": f"lines page {n}", "confidence": 0.9}]}
            for n in (1, 2, 3)
        ]
        return JSONResponse({"pages": pages})

    app = Starlette(
        routes=[
            Route("/v3/pdf", submit, methods=["POST"]),
            Route("/v3/pdf/odd1/stream", stream),
            Route("/v3/pdf/odd1", status),
            Route("/v3/pdf/{name}", download),
        ]
    )
    with ThreadedServer(app) as server:
        state["url"] = server.url
        yield state


def load_odd(state: dict[str, Any], pdf: Path) -> list[Any]:
    return MathpixLoader(
        pdf, mode="page", app_id="a", app_key="k", base_url=state["url"], cache=False
    ).load()


def test_out_of_order_pages_are_yielded_in_page_order(
    odd_stream: dict[str, Any], make_pdf: Any
) -> None:
    pdf = make_pdf("odd.pdf", ["1", "2", "3"])
    odd_stream["order"] = [3, 1, 2]
    docs = load_odd(odd_stream, pdf)
    assert [d.page_content for d in docs] == ["stream page 1", "stream page 2", "stream page 3"]
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]
    assert odd_stream["submitted"][0]["streaming"] is True
    assert odd_stream["requests"] == ["stream"]  # no polling needed


@pytest.mark.parametrize(
    ("order", "from_stream"),
    [([1], 1), ([2], 0), ([], 0), ([1, 3], 1)],
    ids=["first-then-end", "second-only", "empty", "gap"],
)
def test_a_stream_that_ends_early_is_completed_by_polling(
    odd_stream: dict[str, Any], make_pdf: Any, order: list[int], from_stream: int
) -> None:
    pdf = make_pdf("early.pdf", ["1", "2", "3"])
    odd_stream["order"] = order
    docs = load_odd(odd_stream, pdf)
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]  # every page once, in order
    texts = [d.page_content for d in docs]
    assert texts[:from_stream] == [f"stream page {n}" for n in range(1, from_stream + 1)]
    assert texts[from_stream:] == [f"lines page {n}" for n in range(from_stream + 1, 4)]
    assert "status" in odd_stream["requests"] and "odd1.lines.json" in odd_stream["requests"]
