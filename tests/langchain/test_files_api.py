"""Many PDFs through one Files API job (``api="files"``, or ``"auto"`` past files_threshold),
with per-page Documents, per-document errors, the cache, and a fallback without a Files API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb._exceptions import NotFoundError
from mathpix_nb.langchain import MathpixLoader
from mathpix_nb.server import FileFaults, LocalServer


@pytest.fixture(scope="module")
def files_server() -> Iterator[LocalServer]:
    with LocalServer(
        engine="echo", pdf_step_delay=0.01, file_faults=FileFaults(match=("broken-",))
    ) as server:
        yield server


def kw(server: LocalServer, **more: Any) -> dict[str, Any]:
    return {"app_id": server.app_id, "app_key": server.app_key, "base_url": server.url, **more}


def endpoints(server: LocalServer, start: int) -> list[str]:
    return [f"{r.method} {r.endpoint}" for r in server.log[start:]]


@pytest.fixture
def pdfs(make_pdf: Any) -> list[Path]:
    return [make_pdf(f"arch/doc{i}.pdf", [f"doc {i} page {p}" for p in (1, 2)]) for i in range(3)]


def test_api_files_sends_the_pdfs_as_one_job(
    files_server: LocalServer, pdfs: list[Path], make_image: Any
) -> None:
    img = make_image("arch/cover.png")
    start = len(files_server.log)
    docs = MathpixLoader(
        [pdfs[0], img, *pdfs[1:]], mode="page", api="files", cache=False, **kw(files_server)
    ).load()

    assert [(Path(d.metadata["source"]).name, d.metadata.get("page")) for d in docs] == [
        ("doc0.pdf", 0),
        ("doc0.pdf", 1),
        ("cover.png", None),
        ("doc1.pdf", 0),
        ("doc1.pdf", 1),
        ("doc2.pdf", 0),
        ("doc2.pdf", 1),
    ]
    pages = [d for d in docs if d.metadata["kind"] == "pdf"]
    assert len({d.metadata["job_id"] for d in pages}) == 1  # one job
    assert len({d.metadata["file_id"] for d in pages}) == 3  # one file per document
    assert all(d.metadata["confidence"] == 1.0 for d in pages)  # from lines.json
    assert "echo pdf page 2" in pages[1].page_content
    seen = endpoints(files_server, start)
    assert seen.count("POST /files/v1") == 3
    assert "POST /v3/pdf" not in seen and "POST /v3/text" in seen  # images stay on v3/text
    job = pages[0].metadata["job_id"]
    assert seen.index("POST /files/v1/jobs/{job_id}/finalize") > seen.index("POST /files/v1")
    uploads = [r for r in files_server.log[start:] if r.endpoint == "/files/v1"]
    assert len(uploads) == 3 and job.startswith("mathpix-nb-")


def test_auto_uses_the_files_api_from_the_threshold(
    files_server: LocalServer, pdfs: list[Path]
) -> None:
    start = len(files_server.log)
    MathpixLoader(pdfs[:2], files_threshold=3, cache=False, **kw(files_server)).load()
    assert "POST /files/v1" not in endpoints(files_server, start)  # 2 < 3: v3/pdf
    start = len(files_server.log)
    docs = MathpixLoader(pdfs, files_threshold=3, cache=False, **kw(files_server)).load()
    seen = endpoints(files_server, start)
    assert seen.count("POST /files/v1") == 3 and "POST /v3/pdf" not in seen
    assert [d.metadata["total_pages"] for d in docs] == [2, 2, 2]  # single mode: one each
    assert "echo pdf page 1" in docs[0].page_content and "page 2" in docs[0].page_content


def test_a_failed_document_follows_on_error(
    files_server: LocalServer, pdfs: list[Path], make_pdf: Any
) -> None:
    broken = make_pdf("arch/broken-scan.pdf", ["x"])
    sources = [pdfs[0], broken, pdfs[1]]
    docs = MathpixLoader(
        sources, mode="page", api="files", on_error="document", cache=False, **kw(files_server)
    ).load()
    err = [d for d in docs if "error" in d.metadata]
    assert len(err) == 1 and err[0].metadata["source"] == str(broken)
    assert err[0].metadata["error_type"] == "PdfError"
    assert "failed in the Files API" in err[0].metadata["error"]
    assert len(docs) == 5
    skipped = MathpixLoader(
        sources, mode="page", api="files", on_error="skip", cache=False, **kw(files_server)
    ).load()
    assert [d.page_content for d in skipped] == [d.page_content for d in docs if d not in err]


def test_urls_are_submitted_by_url_and_results_are_cached(
    files_server: LocalServer, pdfs: list[Path]
) -> None:
    url = files_server.host_file(pdfs[2].read_bytes(), "hosted.pdf")
    start = len(files_server.log)
    docs = MathpixLoader([url, pdfs[0]], mode="page", api="files", **kw(files_server)).load()
    seen = endpoints(files_server, start)
    assert "POST /files/v1/uri" in seen and seen.count("POST /files/v1") == 1
    assert docs[0].metadata["source"] == url and len(docs) == 4
    # the local file is cached now; the URL never is (what it serves can change)
    start = len(files_server.log)
    MathpixLoader([pdfs[0]], mode="page", api="files", **kw(files_server)).load()
    assert endpoints(files_server, start) == []


@pytest.mark.anyio
async def test_async_and_the_llama_index_reader_use_the_same_path(
    files_server: LocalServer, pdfs: list[Path]
) -> None:
    start = len(files_server.log)
    loader = MathpixLoader(pdfs, mode="page", api="files", cache=False, **kw(files_server))
    docs = [d async for d in loader.alazy_load()]
    assert [d.metadata["page_label"] for d in docs] == ["1", "2"] * 3
    assert endpoints(files_server, start).count("POST /files/v1") == 3
    reader = pytest.importorskip("mathpix_nb.llama_index").MathpixReader(
        api="files", cache=False, **kw(files_server)
    )
    li = await reader.aload_data(pdfs)
    assert [d.text for d in li] == [d.page_content for d in docs]
    assert [d.metadata["page"] for d in reader.load_data(pdfs)] == [0, 1] * 3


@pytest.fixture
def no_files_api(files_server: LocalServer) -> Iterator[str]:
    """The API without a Files API: /files/... answers 404, the rest is forwarded."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from mathpix_nb._serving import ThreadedServer

    async def forward(request: Request) -> Response:
        if request.url.path.startswith("/files/"):
            body = b'{"error": "not_found", "error_info": {"id": "not_found", "message": "no"}}'
            return Response(body, status_code=404, media_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        async with httpx.AsyncClient(base_url=files_server.url, timeout=30) as client:
            answer = await client.request(
                request.method, request.url.path, content=await request.body(), headers=headers
            )
        ctype = answer.headers.get("content-type", "application/json")
        return Response(answer.content, answer.status_code, headers={"content-type": ctype})

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
    with ThreadedServer(app) as server:
        yield server.url


def test_auto_falls_back_to_v3_pdf_without_a_files_api(
    files_server: LocalServer, pdfs: list[Path], no_files_api: str
) -> None:
    creds = {"app_id": files_server.app_id, "app_key": files_server.app_key}
    docs = MathpixLoader(
        pdfs, files_threshold=2, cache=False, base_url=no_files_api, **creds
    ).load()
    assert [d.metadata.get("pdf_id") is not None for d in docs] == [True] * 3  # v3/pdf
    with pytest.raises(NotFoundError, match="not_found"):  # asked for explicitly: no fallback
        MathpixLoader(pdfs, api="files", cache=False, base_url=no_files_api, **creds).load()
