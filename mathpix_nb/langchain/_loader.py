"""``MathpixLoader``: images and PDFs as LangChain Documents (over the shared RAG flow)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from typing import Any, Union

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from langchain_core.documents.base import Blob
from typing_extensions import Unpack

from .._client import AsyncMathpix, Mathpix
from .._options import ClientOptions, PdfOptions, TextOptions
from .._rag import (
    DEFAULT_FILES_THRESHOLD,
    DEFAULT_MAX_FILES,
    Api,
    CacheOption,
    ErrorPolicy,
    LoadMode,
    OutputFormat,
    RagEngine,
    normalise_sources,
)
from ._documents import source_item, to_document

__all__ = ["MathpixLoader", "SourceInput"]

SourceInput = Union[str, "os.PathLike[str]", bytes, Blob]
"""One source: a path, a directory, a glob pattern, an http(s) URL or ``data:`` URI, raw
bytes or a Blob."""


class MathpixLoader(BaseLoader):
    """Load images and PDFs as LangChain Documents with Mathpix OCR.

    Images (PNG, JPEG, WebP, TIFF, ...) are read with ``v3/text``; PDFs (and the other
    document types ``v3/pdf`` accepts: EPUB, DOCX, PPTX, ...) with ``v3/pdf``. In page mode a
    PDF's pages are yielded as Mathpix finishes them (its page stream), in page order.

    Setup:
        ``pip install "mathpix_nb[langchain]"`` and set ``MATHPIX_APP_ID`` /
        ``MATHPIX_APP_KEY`` (or pass ``app_id=`` / ``app_key=``, or an ``app_token=`` /
        ``token_url=`` for images only).

    Instantiate:
        .. code-block:: python

            from mathpix_nb.langchain import MathpixLoader

            loader = MathpixLoader(["scans/", "paper.pdf"], mode="page", region="eu")

    Lazy load:
        .. code-block:: python

            for doc in loader.lazy_load():
                print(doc.metadata["source"], doc.metadata.get("page"))

    Async load:
        .. code-block:: python

            docs = [doc async for doc in loader.alazy_load()]  # max_concurrency at a time

    Args:
        source: A path, directory (scanned recursively, at most ``max_files``), glob
            pattern, http(s) URL, ``data:`` URI, ``bytes``, a ``Blob``, or a list of these.
        client: A ``Mathpix`` client to use (you keep ownership). Default: one is built from
            ``app_id``, ``app_key`` and ``client_options`` for each load.
        async_client: An ``AsyncMathpix`` for ``alazy_load``. Without it (and with a
            ``client``), ``alazy_load`` runs the sync client in worker threads.
        app_id, app_key: API keys (default: the environment).
        output_format: ``"mmd"`` (Mathpix Markdown), ``"markdown"`` (``$`` math) or
            ``"text"`` (plain text).
        mode: ``"single"``: one Document per file; ``"page"``: one per PDF page.
        on_error: ``"raise"``, ``"skip"`` or ``"document"`` (an empty Document whose metadata
            has ``error``, ``error_type``, ``error_id``) for a source that fails (missing,
            unreadable, refused by the API). Setup errors (credentials, quota, PDFs with an
            app token, invalid options) always raise.
        options: API options for every request; each goes to the endpoints that take it.
        image_options: Options for ``v3/text`` only (typed: ``TextOptions``).
        pdf_options: Options for ``v3/pdf`` only (typed: ``PdfOptions``), e.g.
            ``{"page_ranges": "1-3"}``.
        stream: Page mode reads each PDF's page stream (``None``/``True``; polling is the
            fallback) or polls until the whole PDF is done (``False``).
        api: ``"v3"`` (v3/pdf per PDF), ``"files"`` (one Files API job for the load's PDFs)
            or ``"auto"``: the Files API from ``files_threshold`` uncached PDFs.
        pdf_timeout: Seconds one PDF may take (default 600).
        max_concurrency: Sources in flight at once in ``alazy_load``.
        max_files: The most files one directory or glob may name (then an error).
        cache: Reuse results for identical content, options and region: ``True`` (the
            shared journal), ``False``, a path or a ``Journal``.
        **client_options: Client settings, as for ``Mathpix(...)`` (``region``,
            ``base_url``, ``app_token``, ``token_url``, ``proxy_url``, ``timeout``, ...).
    """

    def __init__(
        self,
        source: SourceInput | Iterable[SourceInput],
        *,
        client: Mathpix | None = None,
        async_client: AsyncMathpix | None = None,
        app_id: str | None = None,
        app_key: str | None = None,
        output_format: OutputFormat = "mmd",
        mode: LoadMode = "single",
        on_error: ErrorPolicy = "raise",
        options: Mapping[str, Any] | None = None,
        image_options: TextOptions | None = None,
        pdf_options: PdfOptions | None = None,
        stream: bool | None = None,
        api: Api = "auto",
        files_threshold: int = DEFAULT_FILES_THRESHOLD,
        pdf_timeout: float | None = None,
        max_concurrency: int = 4,
        max_files: int = DEFAULT_MAX_FILES,
        cache: CacheOption = True,
        **client_options: Unpack[ClientOptions],
    ) -> None:
        self._sources = normalise_sources(source, what="MathpixLoader", accepts=(Blob,))
        self._engine = RagEngine(
            what="MathpixLoader",
            client=client,
            async_client=async_client,
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
            api=api,
            files_threshold=files_threshold,
            pdf_timeout=pdf_timeout,
            max_concurrency=max_concurrency,
            max_files=max_files,
            cache=cache,
        )
        # Fail fast on what we can see without touching the disk: named PDFs in token mode.
        self._engine.preflight_named(self._sources)

    def __repr__(self) -> str:
        return f"MathpixLoader({len(self._sources)} source(s), {safe_repr(self._engine)})"

    def lazy_load(self) -> Iterator[Document]:
        """Yield Documents in source order; a PDF's pages as soon as Mathpix has them."""
        engine = self._engine
        items = engine.items(self._sources, convert=source_item)
        client, owned = engine.make_client()
        try:
            for record in engine.iter_records(items, client):
                yield to_document(record)
        finally:
            engine.close_journal()
            if owned:
                client.close()

    async def alazy_load(self) -> AsyncIterator[Document]:
        """Yield Documents in source order while up to ``max_concurrency`` sources run.

        Uses ``AsyncMathpix`` (or the given sync client in worker threads); never the
        executor default of ``BaseLoader``.
        """
        engine = self._engine
        items = engine.items(self._sources, convert=source_item)
        client, owned = engine.make_async_client()
        try:
            async with aclosing(engine.aiter_records(items, client)) as records:
                async for record in records:
                    yield to_document(record)
        finally:
            engine.close_journal()
            if owned and isinstance(client, AsyncMathpix):
                await client.aclose()


def safe_repr(engine: RagEngine) -> str:
    """The settings worth showing, never a secret."""
    shown = {
        k: v
        for k, v in engine.client_options.items()
        if k in ("region", "base_url", "region_urls", "token_url", "proxy_url")
    }
    parts = [f"{k}={v!r}" for k, v in shown.items()]
    parts += [
        f"auth={'app_token' if engine.uses_app_token else 'keys'!r}",
        f"output_format={engine.output_format!r}",
        f"mode={engine.mode!r}",
        f"on_error={engine.on_error!r}",
    ]
    return ", ".join(parts)
