"""MathpixMarkdownSplitter on real multi-page MMD: no chunk holds an unbalanced delimiter,
no table or environment is cut, headings stay with their text.

The MMD is made by ``mmd_docs.math_document`` (seeded, so each case is reproducible) and
reaches the splitter through the loader and the local server (``MmdEngine``), as a user's
documents would.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_text_splitters")
from langchain_text_splitters import RecursiveCharacterTextSplitter

from mathpix_nb._mmd import split_mmd, unbalanced
from mathpix_nb.langchain import MathpixLoader, MathpixMarkdownSplitter
from mathpix_nb.server import LocalServer

from .conftest import write_pdf
from .mmd_docs import ALIGN, DISPLAY, PIPE, TABULAR, MmdEngine, math_document

SEEDS = range(12)
_HEADING_LINE = re.compile(r"^(#{1,6}\s|\\(title|section|subsection)\*?\{)")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, list[Any]]]:
    """Page Documents of every seed's document, loaded through the local server."""
    engine = MmdEngine()
    root = tmp_path_factory.mktemp("mmd")
    pdfs = {}
    for seed in SEEDS:
        pages = math_document(seed)
        pdf = write_pdf(root / f"doc{seed}.pdf", [f"{seed}/{i}" for i in range(len(pages))])
        engine.register(pdf.read_bytes(), pages)
        pdfs[seed] = pdf
    with LocalServer(engine=engine, pdf_step_delay=0.0) as server:
        loader = MathpixLoader(
            list(pdfs.values()),
            mode="page",
            app_id=server.app_id,
            app_key=server.app_key,
            base_url=server.url,
            cache=False,
        )
        docs = loader.load()
    by_seed: dict[int, list[Any]] = {seed: [] for seed in SEEDS}
    for doc in docs:
        by_seed[int(Path(doc.metadata["source"]).stem[3:])].append(doc)
    yield by_seed


def test_the_documents_are_what_the_tests_made(loaded: dict[int, list[Any]]) -> None:
    for seed, docs in loaded.items():
        assert [d.page_content for d in docs] == math_document(seed)


@pytest.mark.parametrize(("size", "overlap"), [(80, 0), (200, 40), (400, 100), (1000, 0)])
def test_no_chunk_cuts_math_tables_or_sections(
    loaded: dict[int, list[Any]], size: int, overlap: int
) -> None:
    splitter = MathpixMarkdownSplitter(chunk_size=size, chunk_overlap=overlap)
    atoms = [*DISPLAY, ALIGN, TABULAR, PIPE]
    checked = 0
    for docs in loaded.values():
        chunks = splitter.split_documents(docs)
        for chunk in chunks:
            text = chunk.page_content
            assert unbalanced(text) is None, (unbalanced(text), text)
            last_line = text.rstrip().split("\n")[-1]
            assert not _HEADING_LINE.match(last_line), f"a heading ends a chunk: {text!r}"
            if len(text) > size:  # only a piece that cannot be cut may be longer
                assert any(a in text for a in atoms) or "\\(" in text or "$" in text, text
            checked += 1
        # every table, environment and display equation is whole in some chunk
        for doc in docs:
            for atom in atoms:
                if atom in doc.page_content:
                    assert any(atom in c.page_content for c in chunks), atom
        # chunks keep the page's metadata (source, page) and say their section
        assert all(c.metadata["source"] == docs[0].metadata["source"] for c in chunks)
        assert {c.metadata["page"] for c in chunks} <= {d.metadata["page"] for d in docs}
    assert checked > 40


def test_a_plain_character_splitter_does_cut_this_mmd(loaded: dict[int, list[Any]]) -> None:
    """The documents are hard enough: LangChain's recursive splitter breaks math in them."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=200, chunk_overlap=0)
    broken = [
        c.page_content
        for docs in loaded.values()
        for c in splitter.split_documents(docs)
        if unbalanced(c.page_content) is not None
    ]
    assert len(broken) >= 10


def test_headings_stay_with_their_text_and_name_the_section() -> None:
    mmd = (
        "\\title{Waves}\n\n## 1. Sound\n\nSound is a wave \\( v = f \\lambda \\).\n\n"
        "### 1.1 Speed\n\nIn air it is about 343 m/s.\n\n## 2. Light\n\nLight is fast."
    )
    chunks = split_mmd(mmd, chunk_size=60)
    texts = [c.text for c in chunks]
    # a heading (and a title right above it) always begins the chunk that holds its text
    assert texts[0].startswith("\\title{Waves}\n\n## 1. Sound\n\nSound is a wave")
    assert "### 1.1 Speed\n\nIn air it is about 343 m/s." in texts
    assert texts[-1] == "## 2. Light\n\nLight is fast."
    assert not any(_HEADING_LINE.match(t.split("\n")[-1]) for t in texts)
    by_text = {c.text: c.headings for c in chunks}
    assert by_text["## 2. Light\n\nLight is fast."] == ("Waves", "2. Light")
    assert by_text["### 1.1 Speed\n\nIn air it is about 343 m/s."] == (
        "Waves",
        "1. Sound",
        "1.1 Speed",
    )
    docs = MathpixMarkdownSplitter(chunk_size=60, chunk_overlap=0).create_documents(
        [mmd], [{"source": "w.pdf"}]
    )
    assert docs[-1].metadata == {"source": "w.pdf", "section": "Waves > 2. Light"}


def test_an_equation_longer_than_a_chunk_stays_whole() -> None:
    eq = "\\[\n" + " + ".join(f"x_{{{i}}}" for i in range(60)) + "\n\\]"
    text = f"Before the sum.\n\n{eq}\n\nAfter the sum."
    chunks = [c.text for c in split_mmd(text, chunk_size=50)]
    assert eq in chunks
    assert all(unbalanced(c) is None for c in chunks)


def test_overlap_repeats_whole_pieces_only() -> None:
    text = " ".join(f"word{i} \\( x_{{{i}}} \\)" for i in range(40))
    chunks = [c.text for c in split_mmd(text, chunk_size=60, chunk_overlap=20)]
    assert len(chunks) > 3
    for a, b in itertools.pairwise(chunks):
        assert unbalanced(b) is None
        assert b.split()[0] in a  # each chunk starts with a piece the previous one ended with


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        split_mmd("x", chunk_size=10, chunk_overlap=10)
    with pytest.raises(ValueError, match="chunk_size"):
        split_mmd("x", chunk_size=0)


def test_the_core_examples_hold() -> None:
    import doctest

    import mathpix_nb._mmd

    assert doctest.testmod(mathpix_nb._mmd).failed == 0
