"""What a user may feed the loader: every source is read, refused clearly, or reported alone.

Over loopback against the shared echo server; each test checks what was (not) sent.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb.langchain import MathpixLoader

from .test_loader import new_records, sha12


def sent(server: Any, start: int) -> list[Any]:
    return [r for r in new_records(server, start) if r.method == "POST"]


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_an_empty_source_string_is_an_error_never_the_working_directory(
    local_server: Any,
    creds: dict[str, Any],
    make_image: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    empty: str,
) -> None:
    make_image("cwd/page.png")
    monkeypatch.chdir(tmp_path / "cwd")  # a scan of "" would find this image
    start = len(local_server.log)
    with pytest.raises(ValueError, match=r"empty source string.*never read as the working"):
        MathpixLoader(empty, **creds)
    with pytest.raises(ValueError, match="empty source string"):
        MathpixLoader(["page.png", empty], **creds)
    assert new_records(local_server, start) == []
    # The current directory is one character away, on purpose.
    (doc,) = MathpixLoader(".", cache=False, **creds).load()
    assert doc.metadata["source"].endswith("page.png")


def test_a_dict_is_refused_with_a_clear_error(creds: dict[str, Any], make_image: Any) -> None:
    img = make_image("d.png")
    with pytest.raises(TypeError, match=r"dict.*not a list of paths.*d\.values\(\)"):
        MathpixLoader({"a": str(img)}, **creds)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        MathpixLoader([str(img), {"path": str(img)}], **creds)  # type: ignore[list-item]


@pytest.fixture
def listed(make_image: Any, tmp_path: Path) -> tuple[Path, Path, Path]:
    a = make_image("list/a.png", size=(101, 33))
    b = make_image("list/b.png", size=(102, 33))
    return a, tmp_path / "list" / "missing.png", b


def test_one_missing_path_is_one_error_document_the_rest_load(
    local_server: Any, creds: dict[str, Any], listed: tuple[Path, Path, Path]
) -> None:
    a, missing, b = listed
    start = len(local_server.log)
    docs = MathpixLoader([a, missing, b], on_error="document", cache=False, **creds).load()

    assert [d.metadata["source"] for d in docs] == [str(a), str(missing), str(b)]
    err = docs[1]
    assert err.page_content == ""
    assert err.metadata["error_type"] == "SourceError"
    assert "missing.png" in err.metadata["error"] and "No such file" in err.metadata["error"]
    assert sha12(a) in docs[0].page_content and sha12(b) in docs[2].page_content
    assert len(sent(local_server, start)) == 2


def test_one_missing_path_is_skipped_with_skip_and_raises_with_raise(
    local_server: Any, creds: dict[str, Any], listed: tuple[Path, Path, Path]
) -> None:
    a, missing, b = listed
    docs = MathpixLoader([a, missing, b], on_error="skip", cache=False, **creds).load()
    assert [d.metadata["source"] for d in docs] == [str(a), str(b)]

    start = len(local_server.log)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        MathpixLoader([a, missing, b], on_error="raise", cache=False, **creds).load()
    assert new_records(local_server, start) == []  # found before anything is sent


@pytest.mark.anyio
async def test_missing_path_async_is_an_error_document_too(
    local_server: Any, creds: dict[str, Any], listed: tuple[Path, Path, Path]
) -> None:
    a, missing, b = listed
    loader = MathpixLoader([a, missing, b], on_error="document", cache=False, **creds)
    docs = [d async for d in loader.alazy_load()]
    assert [d.metadata.get("error_type") for d in docs] == [None, "SourceError", None]


def test_a_data_uri_is_loaded_as_an_image(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    img = make_image("uri.png", size=(111, 37))
    uri = "data:image/png;base64," + base64.b64encode(img.read_bytes()).decode()
    start = len(local_server.log)

    (doc,) = MathpixLoader(uri, cache=False, **creds).load()

    assert doc.metadata["kind"] == "image"
    assert doc.metadata["source"] == f"data:image/png;sha256={sha12(img)}"  # not the whole URI
    assert sha12(img) in doc.page_content and "111x37" in doc.page_content
    (record,) = sent(local_server, start)
    assert record.path == "/v3/text"


def test_a_bad_data_uri_is_a_per_source_error(
    local_server: Any, creds: dict[str, Any], make_image: Any
) -> None:
    good = make_image("good.png")
    docs = MathpixLoader(
        ["data:image/png;base64,@@not base64@@", good], on_error="document", cache=False, **creds
    ).load()
    assert docs[0].metadata["error_type"] == "ImageError"
    assert "base64" in docs[0].metadata["error"]
    assert "error" not in docs[1].metadata


def test_a_literal_file_name_with_glob_characters_is_that_file(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    literal = make_image("g/scan[1].png", size=(120, 41))
    make_image("g/scan1.png", size=(121, 41))  # what the pattern scan[1].png would match
    (doc,) = MathpixLoader(str(literal), cache=False, **creds).load()
    assert doc.metadata["source"] == str(literal)
    assert sha12(literal) in doc.page_content
    # A pattern that names no existing file is still a pattern.
    docs = MathpixLoader(str(tmp_path / "g" / "scan?.png"), cache=False, **creds).load()
    assert [Path(d.metadata["source"]).name for d in docs] == ["scan1.png"]


def test_directories_are_scanned_within_max_files(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    for i in range(3):
        make_image(f"many/p{i}.png", size=(100 + i, 30))
    start = len(local_server.log)
    with pytest.raises(ValueError, match=r"more than 2 image/PDF files.*max_files="):
        MathpixLoader(tmp_path / "many", max_files=2, on_error="document", **creds).load()
    with pytest.raises(ValueError, match=r"matches more than 2 files"):
        MathpixLoader(str(tmp_path / "many" / "*.png"), max_files=2, **creds).load()
    assert new_records(local_server, start) == []  # nothing was sent
    docs = MathpixLoader(tmp_path / "many", max_files=3, cache=False, **creds).load()
    assert len(docs) == 3
    with pytest.raises(ValueError, match="max_files must be a positive int"):
        MathpixLoader(tmp_path, max_files=0, **creds)


@pytest.mark.timeout(20)
def test_special_files_are_refused_never_read(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would block forever
    good = make_image("ok.png")
    start = len(local_server.log)

    loader = MathpixLoader([fifo, "/dev/zero", good], on_error="document", cache=False, **creds)
    docs = loader.load()

    assert [d.metadata["source"] for d in docs] == [str(fifo), "/dev/zero", str(good)]
    assert "FIFO" in docs[0].metadata["error"] and "not a regular file" in docs[0].metadata["error"]
    assert "character device" in docs[1].metadata["error"]
    assert "error" not in docs[2].metadata
    assert len(sent(local_server, start)) == 1
    with pytest.raises(ValueError, match="FIFO"):
        MathpixLoader(fifo, **creds).load()


@pytest.mark.timeout(20)
def test_a_fifo_inside_a_scanned_directory_is_reported_not_read(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    good = make_image("withpipe/a.png")
    os.mkfifo(tmp_path / "withpipe" / "b.png")
    docs = MathpixLoader(tmp_path / "withpipe", on_error="document", cache=False, **creds).load()
    assert docs[0].metadata["source"] == str(good) and "error" not in docs[0].metadata
    assert docs[1].metadata["source"].endswith("b.png") and "FIFO" in docs[1].metadata["error"]


def test_an_empty_directory_is_a_per_source_error(
    local_server: Any, creds: dict[str, Any], make_image: Any, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    good = make_image("full/a.png")
    docs = MathpixLoader(
        [tmp_path / "empty", good], on_error="document", cache=False, **creds
    ).load()
    assert "holds no image or PDF files" in docs[0].metadata["error"]
    assert docs[1].metadata["source"] == str(good)
