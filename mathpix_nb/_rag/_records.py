"""Records: framework-neutral documents (text, metadata, stable id) and their metadata rules.

Each surface wraps a :class:`Record` in its own type (LangChain ``Document``, LlamaIndex
``Document``). The metadata follows LangChain's PDF loaders (``PyPDFLoader``): ``source``,
``page`` **0-based**, ``page_label`` (the 1-based page number as text), ``total_pages``;
plus what a RAG application needs to cite and re-fetch: ``kind``, ``request_id`` (images),
``pdf_id`` (PDFs; ``file_id`` / ``job_id`` through the Files API), ``region``,
``confidence``, ``confidence_rate``, ``is_printed``, ``is_handwritten``, ``engine``,
``output_format``. Unknown values are left out (several vector stores refuse ``None``).

The id is a UUID derived from source + page + content, so loading the same page again gives
the same id (LangChain's indexing API and vector stores dedupe by it; UUIDs suit stores that
only take UUIDs, such as Qdrant).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._mmd import mmd_to_text
from .._models import to_markdown
from ._sources import Item

__all__ = [
    "OutputFormat",
    "Record",
    "error_record",
    "image_record",
    "pdf_page_records",
    "pdf_single_record",
    "record_id",
    "render",
]

OutputFormat = Literal["mmd", "markdown", "text"]

_ID_NAMESPACE = uuid.UUID("7d0f6c2e-3b8a-5c1e-9a4f-6d2b8e1c0a57")

# Keys an embedding or an LLM prompt gains nothing from (LlamaIndex embeds metadata).
TECHNICAL_KEYS = (
    "kind",
    "request_id",
    "pdf_id",
    "file_id",
    "job_id",
    "region",
    "confidence",
    "confidence_rate",
    "is_printed",
    "is_handwritten",
    "engine",
    "output_format",
    "total_pages",
    "page",
    "error",
    "error_type",
    "error_id",
)


@dataclass
class Record:
    """One document: text, metadata and a stable id."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "metadata": self.metadata, "id": self.id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(str(data["text"]), dict(data["metadata"]), str(data.get("id") or ""))


def record_id(source: str, page: int | None, text: str) -> str:
    """A UUID from source + page + content: the same page loaded again keeps its id."""
    key = json.dumps([source, page, text], separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(_ID_NAMESPACE, key))


def render(text: str | None, output_format: OutputFormat) -> str:
    text = text or ""
    if output_format == "text":
        return mmd_to_text(text)
    if output_format == "markdown":
        return to_markdown(text)
    return text


def _clean(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if v is not None}


def _finish(text: str, meta: Mapping[str, Any]) -> Record:
    clean = _clean(meta)
    page = clean.get("page")
    return Record(text, clean, record_id(str(clean.get("source", "")), page, text))


def image_record(item: Item, result: Any, region: str, fmt: OutputFormat) -> Record:
    raw = getattr(result, "raw", None) or {}
    meta = {
        **dict(item.metadata),
        "source": item.source,
        "kind": "image",
        "request_id": getattr(result, "request_id", None) or raw.get("request_id"),
        "region": region,
        "confidence": getattr(result, "confidence", None),
        "confidence_rate": getattr(result, "confidence_rate", None),
        "is_printed": getattr(result, "is_printed", None),
        "is_handwritten": getattr(result, "is_handwritten", None),
        "engine": raw.get("version"),
        "output_format": fmt,
    }
    return _finish(render(getattr(result, "text", None), fmt), meta)


def page_stats(page: Mapping[str, Any]) -> dict[str, Any]:
    """Confidence and printed/handwritten flags of one lines.json page."""
    lines = [ln for ln in page.get("lines", []) if isinstance(ln, Mapping)]
    confidences = [float(ln["confidence"]) for ln in lines if ln.get("confidence") is not None]
    rates = [float(ln["confidence_rate"]) for ln in lines if ln.get("confidence_rate") is not None]
    return {
        "confidence": min(confidences) if confidences else None,
        "confidence_rate": sum(rates) / len(rates) if rates else None,
        "is_printed": any(bool(ln.get("is_printed")) for ln in lines) if lines else None,
        "is_handwritten": any(bool(ln.get("is_handwritten")) for ln in lines) if lines else None,
    }


def combine_stats(pages: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(key: str, how: Callable[[list[Any]], Any]) -> Any:
        values = [p[key] for p in pages if p.get(key) is not None]
        return how(values) if values else None

    return {
        "confidence": pick("confidence", min),
        "confidence_rate": pick("confidence_rate", lambda v: sum(v) / len(v)),
        "is_printed": pick("is_printed", any),
        "is_handwritten": pick("is_handwritten", any),
    }


def lines_pages(lines: Mapping[str, Any] | None) -> list[tuple[int, str, dict[str, Any]]]:
    """``(1-based page number, page text, stats)`` of each page in a lines.json answer."""
    pages = sorted(
        (p for p in (lines or {}).get("pages", []) if isinstance(p, Mapping)),
        key=lambda p: int(p.get("page", 0) or 0),
    )
    out = []
    for i, page in enumerate(pages):
        text = "\n".join(str(ln.get("text") or "") for ln in page.get("lines") or [])
        out.append((int(page.get("page", i + 1) or i + 1), text, page_stats(page)))
    return out


def pdf_base(
    item: Item,
    *,
    region: str,
    fmt: OutputFormat,
    ids: Mapping[str, Any],
    engine: str | None,
    total_pages: int | None,
) -> dict[str, Any]:
    return {
        **dict(item.metadata),
        "source": item.source,
        "kind": "pdf",
        **ids,
        "region": region,
        "engine": engine,
        "output_format": fmt,
        "total_pages": total_pages,
    }


def pdf_page_record(
    base: Mapping[str, Any],
    number: int,
    text: str,
    stats: Mapping[str, Any],
    fmt: OutputFormat,
) -> Record:
    """One page: ``page`` is 0-based (LangChain's convention), ``page_label`` 1-based text."""
    meta = {**base, "page": number - 1, "page_label": str(number), **stats}
    return _finish(render(text, fmt), meta)


def pdf_page_records(
    base: Mapping[str, Any], pages: list[tuple[int, str, dict[str, Any]]], fmt: OutputFormat
) -> list[Record]:
    return [pdf_page_record(base, n, text, stats, fmt) for n, text, stats in pages]


def pdf_single_record(
    base: Mapping[str, Any], mmd: str | None, stats: list[dict[str, Any]], fmt: OutputFormat
) -> Record:
    return _finish(render(mmd, fmt), {**base, **combine_stats(stats)})


def error_record(item: Item, exc: BaseException, region: str | None) -> Record:
    meta = {
        **dict(item.metadata),
        "source": item.source,
        "kind": item.kind,
        "region": region,
        "error": str(exc),
        "error_type": type(exc).__name__,
        "error_id": getattr(exc, "error_id", None),
        "request_id": getattr(exc, "request_id", None),
    }
    return Record("", _clean(meta), record_id(item.source, None, f"error:{exc}"))
