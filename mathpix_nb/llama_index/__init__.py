"""LlamaIndex reader backed by Mathpix OCR: ``MathpixReader``.

The same sources, options, settings (EU region, app tokens, team proxy), cache and metadata
as ``mathpix_nb.langchain.MathpixLoader``, built on the same shared flow
(``mathpix_nb._rag``): images through ``v3/text``, PDFs through ``v3/pdf`` page by page as
Mathpix finishes them (or one Files API job for many). Plugs into ``SimpleDirectoryReader``
as a ``file_extractor``.

Needs the ``llama-index`` extra: ``pip install "mathpix_nb[llama-index]"``.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mathpix_nb.llama_index needs llama-index-core: pip install 'mathpix_nb[llama-index]'"
    ) from exc

from ._reader import MathpixReader

__all__ = ["MathpixReader"]
