"""``MathpixReader``: a LlamaIndex ``BaseReader`` over the shared RAG flow."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any, Union

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document
from typing_extensions import Unpack

from .._client import AsyncMathpix, Mathpix
from .._exceptions import ImageError
from .._options import ClientOptions, PdfOptions, TextOptions
from .._rag import (
    DEFAULT_FILES_THRESHOLD,
    DEFAULT_MAX_FILES,
    TECHNICAL_KEYS,
    Api,
    CacheOption,
    ErrorPolicy,
    Item,
    LoadMode,
    OutputFormat,
    RagEngine,
    Record,
    item_from_parts,
    normalise_sources,
)

__all__ = ["MathpixReader", "SourceInput"]

SourceInput = Union[str, "os.PathLike[str]", bytes]
"""One source: a path, a directory, a glob pattern, an http(s) URL or ``data:`` URI, bytes."""

MAX_FS_BYTES = 1_000_000_000
"""The most one file read through an fsspec ``fs`` may hold."""


class MathpixReader(BaseReader):
    """Read images and PDFs into LlamaIndex Documents with Mathpix OCR.

    .. code-block:: python

        from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
        from mathpix_nb.llama_index import MathpixReader

        reader = MathpixReader(region="eu")
        docs = reader.load_data(["scans/", "paper.pdf"])          # or, as a file extractor:
        docs = SimpleDirectoryReader("papers/", file_extractor={".pdf": reader}).load_data()

    ``mode`` defaults to ``"page"`` (one Document per PDF page, as LlamaIndex's PDF readers
    do). Metadata are the LangChain loader's (``source``, 0-based ``page``, ``page_label``,
    ``total_pages``, ``pdf_id``, ...); the technical keys (ids, confidences, region) are
    excluded from what is embedded and what an LLM sees. ``Document.id_`` is a stable UUID
    from source + page + content. Every argument is the loader's
    (``mathpix_nb.langchain.MathpixLoader``); the source is given to ``load_data``.
    """

    def __init__(
        self,
        *,
        client: Mathpix | None = None,
        async_client: AsyncMathpix | None = None,
        app_id: str | None = None,
        app_key: str | None = None,
        output_format: OutputFormat = "mmd",
        mode: LoadMode = "page",
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
        self._engine = RagEngine(
            what="MathpixReader",
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

    def __repr__(self) -> str:
        engine = self._engine
        shown = [
            f"{k}={v!r}"
            for k, v in engine.client_options.items()
            if k in ("region", "base_url", "region_urls", "token_url", "proxy_url")
        ]
        shown += [
            f"auth={'app_token' if engine.uses_app_token else 'keys'!r}",
            f"mode={engine.mode!r}",
            f"output_format={engine.output_format!r}",
        ]
        return f"MathpixReader({', '.join(shown)})"

    # -- inputs ------------------------------------------------------------------------------
    def _items(self, source: Any, file: Any, fs: Any) -> list[Item]:
        if source is None and file is None:
            raise TypeError("MathpixReader.load_data() needs a source (a path, URL, bytes ...).")
        if source is not None and file is not None:
            raise TypeError("MathpixReader.load_data() takes a source or file=, not both.")
        given = source if source is not None else file
        if fs is not None and not _is_local(fs):
            return self._engine.check_items([_fs_item(fs, given)])
        sources = normalise_sources(given, what="MathpixReader")
        self._engine.preflight_named(sources)
        return self._engine.items(sources)

    @staticmethod
    def _document(record: Record, extra_info: Mapping[str, Any] | None) -> Document:
        metadata = {**dict(extra_info or {}), **record.metadata}
        hidden = [k for k in TECHNICAL_KEYS if k in metadata]
        return Document(
            text=record.text,
            metadata=metadata,
            id_=record.id,
            excluded_embed_metadata_keys=hidden,
            excluded_llm_metadata_keys=hidden,
        )

    # -- BaseReader --------------------------------------------------------------------------
    def lazy_load_data(
        self,
        source: SourceInput | Iterable[SourceInput] | None = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        file: SourceInput | None = None,
        fs: Any = None,
    ) -> Iterator[Document]:
        """Yield Documents in source order; a PDF's pages as soon as Mathpix has them.

        ``extra_info`` is added to every Document's metadata (``SimpleDirectoryReader``
        passes its file metadata); ``fs`` an fsspec file system to read ``file`` from.
        """
        engine = self._engine
        items = self._items(source, file, fs)
        client, owned = engine.make_client()
        try:
            for record in engine.iter_records(items, client):
                yield self._document(record, extra_info)
        finally:
            engine.close_journal()
            if owned:
                client.close()

    def load_data(
        self,
        source: SourceInput | Iterable[SourceInput] | None = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        file: SourceInput | None = None,
        fs: Any = None,
    ) -> list[Document]:
        """Every Document of ``source`` (see :meth:`lazy_load_data`)."""
        return list(self.lazy_load_data(source, extra_info, file=file, fs=fs))

    async def astream_data(
        self,
        source: SourceInput | Iterable[SourceInput] | None = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        file: SourceInput | None = None,
        fs: Any = None,
    ) -> AsyncIterator[Document]:
        """``async for`` the Documents in source order while up to ``max_concurrency``
        sources run (``AsyncMathpix``, or the given sync client in worker threads)."""
        engine = self._engine
        items = self._items(source, file, fs)
        client, owned = engine.make_async_client()
        try:
            async with aclosing(engine.aiter_records(items, client)) as records:
                async for record in records:
                    yield self._document(record, extra_info)
        finally:
            engine.close_journal()
            if owned and isinstance(client, AsyncMathpix):
                await client.aclose()

    async def aload_data(
        self,
        source: SourceInput | Iterable[SourceInput] | None = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        file: SourceInput | None = None,
        fs: Any = None,
    ) -> list[Document]:
        """Every Document, loaded natively async (never a thread around ``load_data``)."""
        return [d async for d in self.astream_data(source, extra_info, file=file, fs=fs)]

    async def alazy_load_data(
        self,
        source: SourceInput | Iterable[SourceInput] | None = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        file: SourceInput | None = None,
        fs: Any = None,
    ) -> list[Document]:
        """LlamaIndex's awaitable form (a list); :meth:`astream_data` yields as pages come."""
        return await self.aload_data(source, extra_info, file=file, fs=fs)


def _is_local(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", "file")
    protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
    return "file" in protocols or "local" in protocols


def _fs_item(fs: Any, file: Any) -> Item:
    """A file on an fsspec file system, read (bounded) into memory."""
    name = str(file)
    try:
        with fs.open(name, "rb") as fh:
            data = fh.read(MAX_FS_BYTES + 1)
    except OSError as exc:
        return Item(name, "pdf" if name.lower().endswith(".pdf") else "image", error=exc)
    if len(data) > MAX_FS_BYTES:
        error = ImageError(
            f"{name!r} is larger than {MAX_FS_BYTES:,} bytes; not read.", source=name
        )
        return Item(name, "pdf", error=error)
    return item_from_parts(
        data=data, path=None, mimetype=None, source=name, metadata={"file_path": str(Path(name))}
    )
