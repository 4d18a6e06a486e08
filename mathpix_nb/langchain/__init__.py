"""LangChain document loader, blob parser and text splitter backed by Mathpix OCR.

``MathpixLoader`` turns images (scans, photos of whiteboards, slides) and PDFs into LangChain
``Document`` objects: images through ``v3/text``, PDFs through ``v3/pdf`` (or, for many PDFs,
one Files API job). PDFs become one ``Document`` per file, or one per page with
``mode="page"``, yielded as Mathpix finishes each page. ``MathpixBlobParser`` does the same
for a ``Blob``. ``MathpixMarkdownSplitter`` cuts Mathpix Markdown without breaking math,
tables or sections.

Metadata follows LangChain's PDF loaders: ``source``, ``page`` (0-based), ``page_label``
(1-based, as text), ``total_pages``; plus ``kind``, ``request_id`` (images) or ``pdf_id``
(PDFs), ``region``, ``confidence``, ``is_printed`` / ``is_handwritten``, ``engine``,
``output_format``. Keys whose value is unknown are left out (several vector stores reject
``None``). ``Document.id`` is a stable UUID from source + page + content.

The flow (sources, routing, cache, metadata, streaming) is ``mathpix_nb._rag``, shared with
``mathpix_nb.llama_index``. Needs the ``langchain`` extra: ``pip install
"mathpix_nb[langchain]"``.
"""

from __future__ import annotations

from typing import Any

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mathpix_nb.langchain needs langchain-core: pip install 'mathpix_nb[langchain]'"
    ) from exc

from .._mmd import mmd_to_text
from .._rag import (
    DOCUMENT_SUFFIXES,
    IMAGE_SUFFIXES,
    Api,
    CacheOption,
    ErrorPolicy,
    LoadMode,
    OutputFormat,
)
from ._loader import MathpixLoader, SourceInput
from ._parser import MathpixBlobParser

__all__ = [
    "DOCUMENT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Api",
    "CacheOption",
    "ErrorPolicy",
    "LoadMode",
    "MathpixBlobParser",
    "MathpixLoader",
    "MathpixMarkdownSplitter",
    "OutputFormat",
    "SourceInput",
    "mmd_to_text",
]


def __getattr__(name: str) -> Any:
    # The splitter needs langchain-text-splitters; import it only when asked for.
    if name == "MathpixMarkdownSplitter":
        from ._splitter import MathpixMarkdownSplitter

        return MathpixMarkdownSplitter
    raise AttributeError(f"module 'mathpix_nb.langchain' has no attribute {name!r}")
