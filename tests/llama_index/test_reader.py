"""MathpixReader against the local server over real loopback HTTP: same sources, options,
settings, cache and metadata as the LangChain loader, because it runs the same flow."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, MetadataMode

from mathpix_nb import AsyncMathpix, Mathpix, NotAllowedError
from mathpix_nb.llama_index import MathpixReader
from mathpix_nb.server import LocalServer


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def posts(server: Any, start: int) -> list[Any]:
    return [r for r in server.log[start:] if r.method == "POST"]


def test_is_a_llama_index_reader_with_native_methods() -> None:
    assert issubclass(MathpixReader, BaseReader)
    for name in ("load_data", "lazy_load_data", "aload_data", "alazy_load_data"):
        assert getattr(MathpixReader, name) is not getattr(BaseReader, name), name


def test_images_and_pdf_pages(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    img = make_image("a.png", size=(130, 40))
    pdf = make_pdf("p.pdf", ["one", "two"])
    docs = MathpixReader(cache=False, **creds).load_data([img, pdf])

    assert all(isinstance(d, Document) for d in docs)
    image, *pages = docs
    assert image.metadata["source"] == str(img) and sha12(img) in image.text
    assert [p.metadata["page"] for p in pages] == [0, 1]  # page mode is the reader's default
    assert [p.metadata["page_label"] for p in pages] == ["1", "2"]
    assert {p.metadata["total_pages"] for p in pages} == {2}
    assert len({d.id_ for d in docs}) == 3
    # ids, confidences and the like never reach the embedding or the LLM
    embedded = pages[0].get_content(metadata_mode=MetadataMode.EMBED)
    assert "page_label: 1" in embedded and pages[0].metadata["pdf_id"] not in embedded
    assert "pdf_id" not in pages[0].get_content(metadata_mode=MetadataMode.LLM)


def test_same_documents_as_the_langchain_loader(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    lc = pytest.importorskip("mathpix_nb.langchain")
    sources = [make_image("same.png", size=(140, 44)), make_pdf("same.pdf", ["x", "y", "z"])]
    ours = MathpixReader(cache=False, **creds).load_data(sources)
    theirs = lc.MathpixLoader(sources, mode="page", cache=False, **creds).load()

    assert [d.text for d in ours] == [d.page_content for d in theirs]
    assert [d.id_ for d in ours] == [d.id for d in theirs]  # same stable ids
    keys = ("request_id", "pdf_id")  # per-request ids differ between two loads

    def strip(meta: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in meta.items() if k not in keys}

    assert [strip(d.metadata) for d in ours] == [strip(d.metadata) for d in theirs]


def test_the_cache_is_shared_with_the_langchain_loader(
    local_server: Any, creds: dict[str, Any], make_pdf: Any
) -> None:
    lc = pytest.importorskip("mathpix_nb.langchain")
    pdf = make_pdf("shared.pdf", ["cached once", "read twice"])
    first = lc.MathpixLoader(pdf, mode="page", **creds).load()
    start = len(local_server.log)
    again = MathpixReader(**creds).load_data(pdf)
    assert local_server.log[start:] == []
    assert [d.text for d in again] == [d.page_content for d in first]
    assert [d.metadata["pdf_id"] for d in again] == [d.metadata["pdf_id"] for d in first]


def test_sources_like_the_loader(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    a = make_image("dir/a.png", size=(101, 30))
    make_image("dir/sub/b.png", size=(102, 30))
    uri = "data:image/png;base64," + base64.b64encode(a.read_bytes()).decode()
    reader = MathpixReader(cache=False, on_error="document", **creds)

    assert len(reader.load_data(tmp_path / "dir")) == 2
    assert len(reader.load_data(str(tmp_path / "dir" / "**" / "*.png"))) == 2
    (from_uri,) = reader.load_data(uri)
    assert sha12(a) in from_uri.text
    (from_bytes,) = reader.load_data(a.read_bytes())
    assert from_bytes.metadata["source"] == f"bytes:sha256={sha12(a)}"
    ok, missing = reader.load_data([a, tmp_path / "gone.png"])
    assert "error" not in ok.metadata and missing.metadata["error_type"] == "SourceError"
    with pytest.raises(ValueError, match="empty source string"):
        reader.load_data("")
    with pytest.raises(TypeError, match="needs a source"):
        reader.load_data()


def test_options_and_eu_region(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    img = make_image("eu.png")
    pdf = make_pdf("eu.pdf", ["p1", "p2", "p3"])
    start = len(local_server.log)
    reader = MathpixReader(
        region="eu",
        image_options={"tags": ["li-tag"]},
        pdf_options={"page_ranges": "2-3"},
        cache=False,
        **creds,
    )
    image, *pages = reader.load_data([img, pdf])
    assert {d.metadata["region"] for d in [image, *pages]} == {"eu"}
    assert {r.region for r in local_server.log[start:]} == {"eu"}
    assert [p.metadata["page_label"] for p in pages] == ["2", "3"]
    assert list(posts(local_server, start)[0].tags) == ["li-tag"]
    with pytest.raises(TypeError, match="Did you mean 'region'"):
        MathpixReader(regoin="eu", **creds)  # type: ignore[call-arg]


def test_app_token_reads_images_and_refuses_pdfs(
    local_server: Any, make_image: Any, make_pdf: Any
) -> None:
    with Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url) as c:
        token = c.app_token(expires=300).app_token
    img = make_image("tok.png")
    start = len(local_server.log)
    reader = MathpixReader(app_token=token, base_url=local_server.url, cache=False)
    assert token not in repr(reader)
    (doc,) = reader.load_data(img)
    assert posts(local_server, start)[0].auth_mode == "app_token"
    assert sha12(img) in doc.text
    with pytest.raises(NotAllowedError, match="app token"):
        reader.load_data(make_pdf("tok.pdf", ["x"]))


def test_through_a_team_proxy(team_proxy: dict[str, Any], make_image: Any, make_pdf: Any) -> None:
    img = make_image("px.png", size=(150, 40))
    pdf = make_pdf("px.pdf", ["through the proxy", "page two"])
    reader = MathpixReader(
        proxy_url=team_proxy["url"], proxy_auth=team_proxy["secret"], cache=False
    )
    image, *pages = reader.load_data([img, pdf])  # PDFs too: the proxy adds the key
    assert sha12(img) in image.text
    assert [p.metadata["page"] for p in pages] == [0, 1]
    assert "POST /v3/text" in team_proxy["seen"] and "POST /v3/pdf" in team_proxy["seen"]
    assert team_proxy["secret"] not in repr(reader)


def test_pages_are_yielded_as_mathpix_finishes_them(make_pdf: Any) -> None:
    pdf = make_pdf("slow.pdf", [f"p{i}" for i in range(6)])
    with LocalServer(engine="echo", latency_base=0.15, pdf_step_delay=0.01) as server:
        reader = MathpixReader(
            app_id=server.app_id, app_key=server.app_key, base_url=server.url, cache=False
        )
        docs = reader.lazy_load_data(pdf)
        first = next(docs)
        with Mathpix(server.app_id, server.app_key, base_url=server.url) as c:
            assert c.pdf_status(first.metadata["pdf_id"])["status"] != "completed"
        assert [d.metadata["page"] for d in [first, *docs]] == list(range(6))


@pytest.mark.anyio
async def test_async_loads_natively_and_in_order(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    paths = [make_image(f"as{i}.png", size=(100 + i, 30)) for i in range(5)]
    paths.append(make_pdf("as.pdf", ["async"]))
    reader = MathpixReader(cache=False, max_concurrency=3, **creds)
    docs = await reader.aload_data(paths)
    assert [d.metadata["source"] for d in docs] == [str(p) for p in paths]
    assert [d.text for d in await reader.alazy_load_data(paths)] == [d.text for d in docs]
    streamed = [d async for d in reader.astream_data(paths)]
    assert [d.id_ for d in streamed] == [d.id_ for d in docs]
    async with AsyncMathpix(
        local_server.app_id, local_server.app_key, base_url=local_server.url
    ) as client:
        own = await MathpixReader(async_client=client, cache=False).aload_data(paths[:2])
    assert [d.text for d in own] == [d.text for d in docs[:2]]


def test_as_a_simple_directory_reader_file_extractor(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, tmp_path: Path
) -> None:
    make_image("lib/scan.png", size=(121, 33))
    make_pdf("lib/paper.pdf", ["alpha", "beta"])
    reader = MathpixReader(cache=False, **creds)
    docs = SimpleDirectoryReader(
        str(tmp_path / "lib"), file_extractor={".pdf": reader, ".png": reader}
    ).load_data()
    by_name = sorted((d.metadata["file_name"], d.metadata.get("page_label")) for d in docs)
    assert by_name == [("paper.pdf", "1"), ("paper.pdf", "2"), ("scan.png", None)]
    assert all(d.metadata["source"].startswith(str(tmp_path)) for d in docs)
