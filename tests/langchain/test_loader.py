"""MathpixLoader / MathpixBlobParser against the local server over real loopback HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, get_args

import pytest
from langchain_core.document_loaders import BaseBlobParser, BaseLoader
from langchain_core.documents import Document
from langchain_core.documents.base import Blob
from PIL import Image

from mathpix_nb import AsyncMathpix, Mathpix
from mathpix_nb._exceptions import (
    AuthenticationError,
    ConfigurationError,
    ImageError,
    NotAllowedError,
)
from mathpix_nb._models import to_markdown
from mathpix_nb.langchain import (
    ErrorPolicy,
    LoadMode,
    MathpixBlobParser,
    MathpixLoader,
    OutputFormat,
    mmd_to_text,
)


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def new_records(server: Any, start: int) -> list[Any]:
    return list(server.log[start:])


# ---------------------------------------------------------------------------- shape


def test_public_names_and_langchain_contract() -> None:
    assert issubclass(MathpixLoader, BaseLoader)
    assert issubclass(MathpixBlobParser, BaseBlobParser)
    # LangChain derives load()/aload() from the lazy methods; overriding load() is a bug.
    assert MathpixLoader.load is BaseLoader.load
    assert MathpixLoader.aload is BaseLoader.aload
    assert MathpixLoader.alazy_load is not BaseLoader.alazy_load
    assert set(get_args(OutputFormat)) == {"mmd", "markdown", "text"}
    assert set(get_args(LoadMode)) == {"single", "page"}
    assert set(get_args(ErrorPolicy)) == {"raise", "skip", "document"}


# ---------------------------------------------------------------------------- images


def test_images_by_path_list_give_one_document_each_in_order(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    a = make_image("a.png", size=(120, 40))
    b = make_image("b.png", size=(140, 50))
    start = len(local_server.log)

    docs = MathpixLoader([a, str(b)], cache=False, **creds).load()

    assert [d.metadata["source"] for d in docs] == [str(a), str(b)]
    # The echo engine names the image it received: size and sha256 prefix.
    assert "120x40" in docs[0].page_content and sha12(a) in docs[0].page_content
    assert "140x50" in docs[1].page_content and sha12(b) in docs[1].page_content
    records = [r for r in new_records(local_server, start) if r.endpoint.endswith("text")]
    assert len(records) == 2
    assert {d.metadata["request_id"] for d in docs} == {r.request_id for r in records}


def test_image_metadata_has_what_rag_needs_to_cite_and_refetch(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    img = make_image("cite.png")
    (doc,) = MathpixLoader(img, cache=False, **creds).load()
    meta = doc.metadata
    assert meta["source"] == str(img)
    assert meta["kind"] == "image"
    assert meta["region"] == "global"
    assert isinstance(meta["request_id"], str) and meta["request_id"]
    assert 0.0 <= meta["confidence"] <= 1.0
    assert isinstance(meta["is_printed"], bool)
    assert isinstance(meta["is_handwritten"], bool)
    assert isinstance(meta["engine"], str) and meta["engine"]
    # Vector stores such as Chroma refuse None values: unknown keys are left out.
    assert None not in meta.values()


def test_directory_glob_bytes_and_blob_sources(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    a = make_image("dir/one.png", size=(100, 30))
    b = make_image("dir/sub/two.jpg", size=(110, 30))
    (tmp_path / "dir" / "notes.txt").write_text("not an image")
    c = make_image("other/three.png", size=(130, 30))

    by_dir = MathpixLoader(tmp_path / "dir", cache=False, **creds).load()
    assert sorted(d.metadata["source"] for d in by_dir) == sorted([str(a), str(b)])

    by_glob = MathpixLoader(str(tmp_path / "**" / "*.png"), cache=False, **creds).load()
    assert sorted(d.metadata["source"] for d in by_glob) == sorted([str(a), str(c)])

    data = c.read_bytes()
    (from_bytes,) = MathpixLoader(data, cache=False, **creds).load()
    assert from_bytes.metadata["source"] == f"bytes:sha256={sha12(c)}"
    assert sha12(c) in from_bytes.page_content

    blob = Blob.from_data(data, mime_type="image/png", metadata={"source": "s3://b/c.png"})
    (from_blob,) = MathpixLoader(blob, cache=False, **creds).load()
    assert from_blob.metadata["source"] == "s3://b/c.png"


def test_output_formats(local_server: Any, creds: dict[str, Any], make_image: Any) -> None:
    img = make_image("fmt.png")
    by_format = {
        fmt: MathpixLoader(img, output_format=fmt, cache=False, **creds).load()[0]
        for fmt in get_args(OutputFormat)
    }
    for fmt, doc in by_format.items():
        assert doc.metadata["output_format"] == fmt
    mmd = by_format["mmd"].page_content
    assert by_format["text"].page_content == mmd_to_text(mmd)
    assert by_format["markdown"].page_content == to_markdown(mmd)


def test_mmd_to_text_strips_markup_and_keeps_latex() -> None:
    mmd = "\\title{On Circles}\n## Area\nThe area is \\( \\pi r^{2} \\) and **never** $x$.\n"
    assert mmd_to_text(mmd) == "On Circles\nArea\nThe area is  \\pi r^{2}  and never x."


def test_api_options_pass_through(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    img = make_image("tags.png")
    start = len(local_server.log)
    MathpixLoader(img, image_options={"tags": ["lc-pass"]}, cache=False, **creds).load()
    (record,) = new_records(local_server, start)
    assert list(record.tags) == ["lc-pass"]


# ---------------------------------------------------------------------------- PDFs


def test_pdf_single_document_per_file(
    local_server: Any, creds: dict[str, Any], make_pdf: Any
) -> None:
    pdf = make_pdf("two.pdf", ["first page", "second page"])
    start = len(local_server.log)

    docs = MathpixLoader(pdf, cache=False, **creds).load()

    assert len(docs) == 1
    meta = docs[0].metadata
    assert meta["source"] == str(pdf)
    assert meta["kind"] == "pdf"
    assert meta["total_pages"] == 2
    assert "page" not in meta
    submits = [
        r for r in new_records(local_server, start) if r.method == "POST" and "pdf" in r.endpoint
    ]
    assert len(submits) == 1
    assert isinstance(meta["pdf_id"], str) and meta["pdf_id"]
    assert docs[0].page_content.strip()


def test_pdf_page_mode_uses_page_data(
    local_server: Any, creds: dict[str, Any], make_pdf: Any
) -> None:
    pdf = make_pdf("three.pdf", ["alpha", "beta", "gamma"])
    docs = MathpixLoader(pdf, mode="page", cache=False, **creds).load()

    # LangChain's convention (PyPDFLoader): page is 0-based, page_label the printed number
    assert [d.metadata["page"] for d in docs] == [0, 1, 2]
    assert [d.metadata["page_label"] for d in docs] == ["1", "2", "3"]
    assert len({d.metadata["pdf_id"] for d in docs}) == 1
    assert all(d.metadata["total_pages"] == 3 for d in docs)
    assert all(d.page_content.strip() for d in docs)
    assert len({d.page_content for d in docs}) == 3  # each page has its own text


def test_pdf_options_pass_through(local_server: Any, creds: dict[str, Any], make_pdf: Any) -> None:
    pdf = make_pdf("ranges.pdf", ["p one", "p two", "p three", "p four"])
    docs = MathpixLoader(
        pdf, mode="page", pdf_options={"page_ranges": "2-3"}, cache=False, **creds
    ).load()
    # real page numbers (0-based), not 0..n-1 of the selected pages
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert [d.metadata["page_label"] for d in docs] == ["2", "3"]
    assert {d.metadata["total_pages"] for d in docs} == {2}  # pages converted
    assert "page 2" in docs[0].page_content and "page 3" in docs[1].page_content


def test_pdf_from_bytes(local_server: Any, creds: dict[str, Any], make_pdf: Any) -> None:
    pdf = make_pdf("mem.pdf", ["in memory"])
    (doc,) = MathpixLoader(pdf.read_bytes(), cache=False, **creds).load()
    assert doc.metadata["kind"] == "pdf"
    assert doc.metadata["source"] == f"bytes:sha256={sha12(pdf)}"


def test_mixed_images_and_pdfs_in_one_directory(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, tmp_path: Path
) -> None:
    make_image("mix/a.png")
    make_pdf("mix/b.pdf", ["one", "two"])
    docs = MathpixLoader(tmp_path / "mix", mode="page", cache=False, **creds).load()
    assert [d.metadata["kind"] for d in docs] == ["image", "pdf", "pdf"]


# ---------------------------------------------------------------------------- async


@pytest.mark.anyio
async def test_alazy_load_matches_lazy_load(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    paths = [make_image(f"as{i}.png", size=(100 + i, 30)) for i in range(5)]
    paths.append(make_pdf("as.pdf", ["async page"]))
    loader = MathpixLoader(paths, cache=False, max_concurrency=3, **creds)

    sync_docs = loader.load()
    async_docs = [doc async for doc in loader.alazy_load()]

    assert [d.metadata["source"] for d in async_docs] == [str(p) for p in paths]
    assert [d.page_content for d in async_docs] == [d.page_content for d in sync_docs]


class CountingAsyncMathpix(AsyncMathpix):
    """Records how many text() calls are in flight at once (the real client does the I/O)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.peak = 0

    async def text(self, *args: Any, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().text(*args, **kwargs)
        finally:
            self.in_flight -= 1


@pytest.mark.anyio
async def test_alazy_load_runs_concurrently_but_bounded(make_image: Any) -> None:
    from mathpix_nb.server import LocalServer

    paths = [make_image(f"c{i}.png", size=(100 + i, 30)) for i in range(8)]
    with LocalServer(engine="echo", latency_base=0.2) as server:
        async with CountingAsyncMathpix(
            app_id=server.app_id, app_key=server.app_key, base_url=server.url
        ) as client:
            loader = MathpixLoader(paths, async_client=client, max_concurrency=3, cache=False)
            docs = [d async for d in loader.alazy_load()]
    assert len(docs) == 8
    assert client.peak == 3  # more than one at a time, never more than asked


@pytest.mark.anyio
async def test_alazy_load_with_only_a_sync_client_uses_threads(
    local_server: Any, make_image: Any
) -> None:
    paths = [make_image(f"t{i}.png", size=(100 + i, 30)) for i in range(3)]
    with Mathpix(
        app_id=local_server.app_id, app_key=local_server.app_key, base_url=local_server.url
    ) as client:
        loader = MathpixLoader(paths, client=client, cache=False)
        docs = [d async for d in loader.alazy_load()]
    assert [d.metadata["source"] for d in docs] == [str(p) for p in paths]


# ---------------------------------------------------------------------------- regions


def test_eu_region_never_touches_global(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    img = make_image("eu.png")
    pdf = make_pdf("eu.pdf", ["european page"])
    start = len(local_server.log)

    docs = MathpixLoader([img, pdf], region="eu", cache=False, **creds).load()

    assert {d.metadata["region"] for d in docs} == {"eu"}
    records = new_records(local_server, start)
    assert records, "the EU server saw no request"
    assert {r.region for r in records} == {"eu"}


@pytest.mark.anyio
async def test_eu_region_async(local_server: Any, creds: dict[str, Any], make_image: Any) -> None:
    img = make_image("eu_async.png")
    start = len(local_server.log)
    docs = [d async for d in MathpixLoader(img, region="eu", cache=False, **creds).alazy_load()]
    assert docs[0].metadata["region"] == "eu"
    assert {r.region for r in new_records(local_server, start)} == {"eu"}


# ---------------------------------------------------------------------------- app tokens


@pytest.fixture
def app_token(local_server: Any) -> str:
    with Mathpix(
        app_id=local_server.app_id, app_key=local_server.app_key, base_url=local_server.url
    ) as client:
        return client.app_token(expires=300).app_token


def test_app_token_mode_reads_images(local_server: Any, make_image: Any, app_token: str) -> None:
    img = make_image("tok.png")
    start = len(local_server.log)
    loader = MathpixLoader(img, app_token=app_token, base_url=local_server.url, cache=False)
    assert app_token not in repr(loader)

    (doc,) = loader.load()

    assert sha12(img) in doc.page_content
    (record,) = new_records(local_server, start)
    assert record.auth_mode == "app_token"


def test_pdf_with_app_token_is_refused_before_anything_is_sent(
    local_server: Any, make_image: Any, make_pdf: Any, app_token: str, tmp_path: Path
) -> None:
    pdf = make_pdf("tok/doc.pdf", ["secret"])
    make_image("tok/img.png")
    start = len(local_server.log)

    with pytest.raises(NotAllowedError, match=r"doc\.pdf") as named:
        MathpixLoader(pdf, app_token=app_token, base_url=local_server.url)
    assert app_token not in str(named.value)

    # A directory only reveals its PDF when expanded: still refused before the first request,
    # even though the image comes first and the error policy says skip.
    loader = MathpixLoader(
        tmp_path / "tok", app_token=app_token, base_url=local_server.url, on_error="skip"
    )
    with pytest.raises(NotAllowedError, match="app_id/app_key"):
        loader.load()
    assert new_records(local_server, start) == []


def test_token_url_mode_refuses_pdfs_without_a_request(make_pdf: Any) -> None:
    pdf = make_pdf("tokurl.pdf", ["x"])
    # Port 9 on loopback has no listener: any attempt to fetch a token would fail loudly.
    with pytest.raises(NotAllowedError, match=r"tokurl\.pdf"):
        MathpixLoader(pdf, token_url="http://127.0.0.1:9/token", token_auth="caller-secret")


def test_app_token_plus_keys_sends_pdfs_with_the_keys(
    local_server: Any, make_image: Any, make_pdf: Any, app_token: str
) -> None:
    img = make_image("both.png")
    pdf = make_pdf("both.pdf", ["keys page"])
    start = len(local_server.log)
    docs = MathpixLoader(
        [img, pdf],
        app_token=app_token,
        app_id=local_server.app_id,
        app_key=local_server.app_key,
        base_url=local_server.url,
        cache=False,
    ).load()
    assert [d.metadata["kind"] for d in docs] == ["image", "pdf"]
    modes = {
        (r.method, r.path.startswith("/v3/text")): r.auth_mode
        for r in new_records(local_server, start)
    }
    assert modes[("POST", True)] == "app_token"
    assert modes[("POST", False)] == "keys"


# ---------------------------------------------------------------------------- error policies


@pytest.fixture
def good_and_bad(make_image: Any, tmp_path: Path) -> tuple[Path, Path]:
    good = make_image("good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image at all")  # refused by the client, never sent
    return good, bad


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    """A blank page: the server answers image_no_content (HTTP 200 error body)."""
    path = tmp_path / "blank.png"
    Image.new("RGB", (120, 40), "white").save(path)
    return path


def test_on_error_raise(
    local_server: Any, creds: dict[str, Any], good_and_bad: tuple[Path, Path]
) -> None:
    good, bad = good_and_bad
    start = len(local_server.log)
    with pytest.raises(ImageError) as info:
        MathpixLoader([good, bad], on_error="raise", cache=False, **creds).load()
    # The error names the bad file, in its message and as its source ...
    assert info.value.source == str(bad)
    assert "bad.png" in str(info.value)
    # ... and the good file before it was read (the bad one never went out).
    assert len(new_records(local_server, start)) == 1


def test_on_error_skip(
    local_server: Any, creds: dict[str, Any], good_and_bad: tuple[Path, Path]
) -> None:
    good, bad = good_and_bad
    docs = MathpixLoader([bad, good], on_error="skip", cache=False, **creds).load()
    assert [d.metadata["source"] for d in docs] == [str(good)]


@pytest.mark.anyio
async def test_on_error_document_sync_and_async(
    local_server: Any, creds: dict[str, Any], good_and_bad: tuple[Path, Path], blank: Path
) -> None:
    good, bad = good_and_bad
    loader = MathpixLoader([bad, blank, good], on_error="document", cache=False, **creds)
    for docs in (loader.load(), [d async for d in loader.alazy_load()]):
        local_err, api_err, ok = docs
        assert local_err.metadata["source"] == str(bad)
        assert local_err.page_content == ""
        assert local_err.metadata["error_type"] == "ImageError"
        assert "bad.png" in local_err.metadata["error"]
        assert api_err.metadata["source"] == str(blank)
        assert api_err.metadata["error_type"] == "OcrError"
        assert api_err.metadata["error_id"] == "image_no_content"
        assert api_err.metadata["request_id"]  # the API's answer can still be looked up
        assert "error" not in ok.metadata and ok.page_content


def test_server_errors_follow_the_policy(make_image: Any) -> None:
    from mathpix_nb.server import Faults, LocalServer

    img = make_image("flaky.png")
    with LocalServer(engine="echo", faults=Faults(http_5xx=1.0)) as server:
        kw = {
            "app_id": server.app_id,
            "app_key": server.app_key,
            "base_url": server.url,
            "max_retries": 0,
            "cache": False,
        }
        (err,) = MathpixLoader(img, on_error="document", **kw).load()
        assert err.metadata["error_type"] == "ServerError"
        assert MathpixLoader(img, on_error="skip", **kw).load() == []


def test_bad_credentials_raise_whatever_the_policy(local_server: Any, make_image: Any) -> None:
    img = make_image("creds.png")
    loader = MathpixLoader(
        img,
        app_id="nobody",
        app_key="wrong-key-123",
        base_url=local_server.url,
        on_error="skip",
        cache=False,
    )
    with pytest.raises(AuthenticationError) as info:
        loader.load()
    assert "wrong-key-123" not in str(info.value)


@pytest.mark.anyio
async def test_async_stops_sending_after_a_setup_error(local_server: Any, make_image: Any) -> None:
    paths = [make_image(f"stop{i}.png", size=(100 + i, 30)) for i in range(5)]
    start = len(local_server.log)
    loader = MathpixLoader(
        paths,
        app_id="nobody",
        app_key="wrong-key-456",
        base_url=local_server.url,
        on_error="document",
        max_concurrency=1,
        cache=False,
    )
    with pytest.raises(AuthenticationError):
        [d async for d in loader.alazy_load()]
    # One refused request is enough: the queued images are never sent.
    assert len(new_records(local_server, start)) == 1


# ---------------------------------------------------------------------------- cache


def test_reindexing_the_same_files_does_not_pay_twice(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    img = make_image("cached.png", size=(150, 44))
    pdf = make_pdf("cached.pdf", ["cached page one", "cached page two"])
    first = MathpixLoader([img, pdf], mode="page", **creds).load()

    start = len(local_server.log)
    again = MathpixLoader([img, pdf], mode="page", **creds).load()
    assert new_records(local_server, start) == []
    assert again == first

    # A different option or region is a different result: it is fetched.
    MathpixLoader(img, region="eu", **creds).load()
    assert len(new_records(local_server, start)) == 1
    # cache=False always asks the API.
    MathpixLoader(img, cache=False, **creds).load()
    assert len(new_records(local_server, start)) == 2


def test_cache_keeps_the_new_source_name_for_identical_content(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    img = make_image("orig.png", size=(160, 44))
    copy = tmp_path / "copy.png"
    copy.write_bytes(img.read_bytes())
    MathpixLoader(img, **creds).load()
    start = len(local_server.log)
    (doc,) = MathpixLoader(copy, **creds).load()
    assert new_records(local_server, start) == []
    assert doc.metadata["source"] == str(copy)


# ---------------------------------------------------------------------------- blob parser


def test_blob_parser_parses_bytes_and_paths(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    img = make_image("blob.png")
    pdf = make_pdf("blob.pdf", ["p1", "p2"])
    parser = MathpixBlobParser(mode="page", cache=False, **creds)
    try:
        (from_data,) = parser.parse(Blob.from_data(img.read_bytes(), path=str(img)))
        pages = parser.parse(Blob.from_path(pdf))
    finally:
        parser.close()
    assert from_data.metadata["source"] == str(img)
    assert sha12(img) in from_data.page_content
    assert [d.metadata["page"] for d in pages] == [0, 1]


def test_blob_parser_with_langchain_core_blobs_only(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, tmp_path: Path
) -> None:
    """The docs' example: blobs from paths and bytes, no langchain-community."""
    a = make_image("bl/a.png", size=(101, 31))
    pdf = make_pdf("bl/sub/paper.pdf", ["one", "two"])
    with MathpixBlobParser(mode="page", cache=False, **creds) as parser:
        docs = [
            doc
            for path in sorted((tmp_path / "bl").glob("**/*"))
            if path.is_file()
            for doc in parser.lazy_parse(Blob.from_path(path))
        ]
        blob = Blob.from_data(
            a.read_bytes(), mime_type="image/png", metadata={"source": "s3://b/a"}
        )
        (from_bytes,) = parser.parse(blob)
    assert [(d.metadata["source"], d.metadata.get("page")) for d in docs] == [
        (str(a), None),
        (str(pdf), 0),
        (str(pdf), 1),
    ]
    assert from_bytes.metadata["source"] == "s3://b/a" and sha12(a) in from_bytes.page_content
    assert all(isinstance(d, Document) and d.page_content for d in docs)


# ---------------------------------------------------------------------------- ids


def test_document_ids_are_stable_uuids_from_source_page_and_content(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, tmp_path: Path
) -> None:
    import uuid

    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    img = make_image("ids/a.png")
    pdf = make_pdf("ids/p.pdf", ["one", "two"])
    first = MathpixLoader([img, pdf], mode="page", cache=False, **creds).load()
    again = MathpixLoader([img, pdf], mode="page", cache=False, **creds).load()

    assert [d.id for d in first] == [d.id for d in again]  # a new request, the same ids
    assert first[0].metadata["request_id"] != again[0].metadata["request_id"]
    assert len({d.id for d in first}) == 3
    assert all(uuid.UUID(str(d.id)).version == 5 for d in first)  # stores such as Qdrant want UUIDs
    copy = tmp_path / "ids" / "b.png"
    copy.write_bytes(img.read_bytes())
    (other,) = MathpixLoader(copy, cache=False, **creds).load()
    assert other.page_content == first[0].page_content and other.id != first[0].id

    # A vector store keyed by Document.id: re-indexing the same files adds nothing.
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_documents(first)
    store.add_documents(again)
    assert len(store.store) == 3


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_give_specific_errors(creds: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match=r"nope\.png.*glob pattern"):
        MathpixLoader(missing, **creds).load()
    with pytest.raises(ValueError, match=r"matched no files"):
        MathpixLoader(str(tmp_path / "*.png"), **creds).load()
    with pytest.raises(ValueError, match=r"mode must be one of 'single', 'page'"):
        MathpixLoader(tmp_path, mode="pages", **creds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        MathpixLoader(tmp_path, on_error="ignore", **creds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty list"):
        MathpixLoader([], **creds)
    with pytest.raises(TypeError, match="int"):
        MathpixLoader([42], **creds).load()  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="app_key"):
        MathpixLoader(tmp_path, client=Mathpix(app_id="a", app_key="b"), app_key="c")


def test_repr_never_shows_secrets(local_server: Any, tmp_path: Path) -> None:
    loader = MathpixLoader(tmp_path, app_id="my-app", app_key="super-secret-key", region="eu")
    parser = MathpixBlobParser(app_id="my-app", app_key="super-secret-key")
    for text in (repr(loader), repr(parser)):
        assert "super-secret-key" not in text
    assert "eu" in repr(loader)


def test_hidden_files_in_a_directory_are_skipped(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    seen = make_image("hid/page.png")
    make_image("hid/.ipynb_checkpoints/page-checkpoint.png")
    make_image("hid/.thumb.png")
    docs = MathpixLoader(tmp_path / "hid", cache=False, **creds).load()
    assert [d.metadata["source"] for d in docs] == [str(seen)]


@pytest.fixture
def file_server(tmp_path: Path) -> Any:
    """A plain static HTTP server on loopback, so the API server can fetch sources by URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_sources_are_sent_as_urls(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, file_server: str
) -> None:
    img = make_image("web/board.png", size=(133, 37))
    make_pdf("web/paper.pdf", ["from the web", "second"])
    urls = [f"{file_server}/web/board.png", f"{file_server}/web/paper.pdf"]
    start = len(local_server.log)

    image_doc, pdf_doc = MathpixLoader(urls, **creds).load()  # URLs are never cached

    assert image_doc.metadata["source"] == urls[0] and image_doc.metadata["kind"] == "image"
    assert sha12(img) in image_doc.page_content  # the server fetched the very bytes
    assert pdf_doc.metadata["source"] == urls[1] and pdf_doc.metadata["total_pages"] == 2
    posts = [r for r in new_records(local_server, start) if r.method == "POST"]
    assert [r.path for r in posts] == ["/v3/text", "/v3/pdf"]
    assert all(r.bytes_received < 1000 for r in posts)  # a URL went over the wire, not a file
    again = MathpixLoader(urls[:1], **creds).load()
    assert again[0].metadata["request_id"] != image_doc.metadata["request_id"]


@pytest.mark.anyio
async def test_consumer_may_stop_early(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    from contextlib import aclosing

    paths = [make_image(f"early{i}.png", size=(100 + i, 30)) for i in range(6)]
    loader = MathpixLoader(paths, cache=False, max_concurrency=2, **creds)
    async with aclosing(loader.alazy_load()) as stream:
        async for doc in stream:
            first = doc
            break
    assert first.metadata["source"] == str(paths[0])


def test_settings_and_options_are_checked_by_the_core_rules(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any
) -> None:
    from mathpix_nb import OptionError

    start = len(local_server.log)
    with pytest.raises(OptionError, match="Did you mean 'region'"):
        MathpixLoader("x.png", regoin="eu", **creds)  # type: ignore[call-arg]
    with pytest.raises(OptionError, match="Did you mean 'page_ranges'"):
        MathpixLoader("x.pdf", options={"page_range": "1-2"}, **creds)
    with pytest.raises(OptionError, match="'include_line_data' must be bool"):
        MathpixLoader("x.png", image_options={"include_line_data": "yes"}, **creds)  # type: ignore[typeddict-item]
    with pytest.raises(OptionError, match="stream=True/False"):
        MathpixLoader("x.pdf", pdf_options={"streaming": True}, **creds)
    assert local_server.log[start:] == []
    # 'options' go to each endpoint that takes them: a v3/text-only option never reaches v3/pdf
    img, pdf = make_image("route.png"), make_pdf("route.pdf", ["one"])
    docs = MathpixLoader(
        [img, pdf], options={"include_line_data": True, "rm_spaces": True}, cache=False, **creds
    ).load()
    assert [d.metadata["kind"] for d in docs] == ["image", "pdf"]


def test_a_slow_pdf_times_out_naming_the_source_and_the_loaders_knob(
    creds: dict[str, Any], make_pdf: Any
) -> None:
    """The loader waits by the core's pdf_wait; its timeout is said in the loader's terms."""
    from mathpix_nb.server import LocalServer

    pdf = make_pdf("slow.pdf", ["a", "b", "c"])
    with LocalServer(engine="echo", pdf_step_delay=5.0) as server:
        loader = MathpixLoader(
            pdf,
            cache=False,
            app_id=server.app_id,
            app_key=server.app_key,
            base_url=server.url,
            pdf_timeout=0.3,
            on_error="document",
        )
        docs = loader.load()
    assert len(docs) == 1
    meta = docs[0].metadata
    assert meta["error_type"] == "PollTimeoutError"
    assert str(pdf) in meta["error"] and "pdf_timeout=" in meta["error"]
