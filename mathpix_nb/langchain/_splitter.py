"""``MathpixMarkdownSplitter``: a LangChain ``TextSplitter`` that knows Mathpix Markdown.

Never cuts inside ``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``, a LaTeX environment
(``tabular``, ``align``, ...), a pipe table or a code fence, and keeps every section heading
with the text that follows it (the rules live in ``mathpix_nb._mmd.split_mmd``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

try:
    from langchain_text_splitters import TextSplitter
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "MathpixMarkdownSplitter needs langchain-text-splitters: "
        "pip install 'mathpix_nb[langchain]'"
    ) from exc
from langchain_core.documents import Document

from .._mmd import split_mmd

__all__ = ["MathpixMarkdownSplitter"]


class MathpixMarkdownSplitter(TextSplitter):
    r"""Split Mathpix Markdown into chunks without breaking math, tables or sections.

    Chunks hold at most ``chunk_size`` (by ``length_function``) unless one piece that must
    stay whole (a display equation, a table) is longer: it is then a chunk of its own.
    ``chunk_overlap`` repeats whole pieces of the previous chunk, never across a section.
    With ``section_metadata`` (default) each chunk's metadata gets ``section``: its heading
    path, ``"Intro > Area"``.

    .. code-block:: python

        from mathpix_nb.langchain import MathpixLoader, MathpixMarkdownSplitter

        docs = MathpixLoader("paper.pdf", mode="page").load()
        chunks = MathpixMarkdownSplitter(chunk_size=800, chunk_overlap=100).split_documents(docs)
    """

    def __init__(
        self,
        chunk_size: int = 1000,
        chunk_overlap: int = 100,
        *,
        length_function: Callable[[str], int] = len,
        add_start_index: bool = False,
        section_metadata: bool = True,
    ) -> None:
        super().__init__(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=length_function,
            add_start_index=add_start_index,
        )
        self._section_metadata = section_metadata

    def split_text(self, text: str) -> list[str]:
        return [c.text for c in self._chunks(text)]

    def _chunks(self, text: str) -> Any:
        return split_mmd(text, self._chunk_size, self._chunk_overlap, self._length_function)

    def create_documents(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> list[Document]:
        """Documents for each chunk, with the source's metadata (+ ``section``,
        ``start_index`` when asked)."""
        metas = metadatas or [{}] * len(texts)
        documents = []
        for text, meta in zip(texts, metas, strict=True):
            for chunk in self._chunks(text):
                metadata = copy.deepcopy(meta)
                if self._add_start_index:
                    metadata["start_index"] = chunk.start
                if self._section_metadata and chunk.headings:
                    metadata["section"] = " > ".join(chunk.headings)
                documents.append(Document(page_content=chunk.text, metadata=metadata))
        return documents
