"""``MathpixBlobParser``: image and PDF blobs as LangChain Documents (the shared RAG flow)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.document_loaders import BaseBlobParser
from langchain_core.documents import Document
from langchain_core.documents.base import Blob
from typing_extensions import Unpack

from .._client import Mathpix
from .._options import ClientOptions, PdfOptions, TextOptions
from .._rag import (
    DEFAULT_MAX_FILES,
    CacheOption,
    ErrorPolicy,
    LoadMode,
    OutputFormat,
    RagEngine,
)
from ._documents import blob_item, to_document
from ._loader import safe_repr

__all__ = ["MathpixBlobParser"]


class MathpixBlobParser(BaseBlobParser):
    """Parse image and PDF blobs with Mathpix OCR (for any blob loader).

    The blob's kind comes from its MIME type, then its file suffix, then its first bytes.
    Takes the loader's keyword arguments (no ``source``, no async or Files API options);
    keeps one client for its lifetime (``close()`` it, or use it in a ``with`` block).

    .. code-block:: python

        from langchain_core.documents.base import Blob
        from mathpix_nb.langchain import MathpixBlobParser

        with MathpixBlobParser(mode="page", region="eu") as parser:
            docs = parser.parse(Blob.from_path("paper.pdf"))
    """

    def __init__(
        self,
        *,
        client: Mathpix | None = None,
        app_id: str | None = None,
        app_key: str | None = None,
        output_format: OutputFormat = "mmd",
        mode: LoadMode = "single",
        on_error: ErrorPolicy = "raise",
        options: Mapping[str, Any] | None = None,
        image_options: TextOptions | None = None,
        pdf_options: PdfOptions | None = None,
        stream: bool | None = None,
        pdf_timeout: float | None = None,
        cache: CacheOption = True,
        **client_options: Unpack[ClientOptions],
    ) -> None:
        self._engine = RagEngine(
            what="MathpixBlobParser",
            client=client,
            async_client=None,
            app_id=app_id,
            app_key=app_key,
            client_options=client_options,
            output_format=output_format,
            mode=mode,
            on_error=on_error,
            options=options,
            image_options=image_options,
            pdf_options=pdf_options,
            stream=stream,
            api="v3",
            files_threshold=1,
            pdf_timeout=pdf_timeout,
            max_concurrency=1,
            max_files=DEFAULT_MAX_FILES,
            cache=cache,
        )
        self._client: Mathpix | None = None

    def __repr__(self) -> str:
        return f"MathpixBlobParser({safe_repr(self._engine)})"

    def _get_client(self) -> Mathpix:
        # One client for the parser's lifetime so a run over many blobs reuses connections.
        if self._client is None:
            self._client, _ = self._engine.make_client()
        return self._client

    def close(self) -> None:
        """Close the client the parser built (a client you passed in stays open)."""
        if self._client is not None and self._engine.client is None:
            self._client.close()
        self._client = None
        self._engine.close_journal()

    def __enter__(self) -> MathpixBlobParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the Documents of one blob (one per file, or per PDF page in page mode)."""
        item = blob_item(blob)
        if item.error is not None and self._engine.on_error == "raise":
            raise item.error
        self._engine.preflight([item])
        for record in self._engine.iter_records([item], self._get_client()):
            yield to_document(record)
