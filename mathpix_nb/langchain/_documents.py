"""Records of the shared RAG flow as LangChain ``Document``\\ s, and blobs as items."""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.documents.base import Blob

from .._rag import Item, Record, item_from_parts

__all__ = ["blob_item", "source_item", "to_document"]


def to_document(record: Record) -> Document:
    """A Document with the record's text, metadata and stable id."""
    return Document(page_content=record.text, metadata=record.metadata, id=record.id or None)


def blob_item(blob: Blob) -> Item:
    """The item for a Blob: kind from its MIME type, then suffix, then first bytes."""
    data = blob.as_bytes() if blob.data is not None else None
    return item_from_parts(
        data=data,
        path=blob.path if data is None else None,
        mimetype=blob.mimetype,
        source=blob.source or (str(blob.path) if blob.path is not None else None),
        metadata=blob.metadata,
    )


def source_item(value: Any) -> Item | None:
    """Sources only LangChain has (a Blob); None for everything the core reads itself."""
    return blob_item(value) if isinstance(value, Blob) else None
