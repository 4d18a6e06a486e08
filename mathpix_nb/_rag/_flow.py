"""The one load flow behind every RAG surface (LangChain loader and parser, LlamaIndex reader).

What one source becomes is written once, as a generator *flow* (like the client's core): it
yields operations (:class:`Call` a public client method, open / read / close a PDF page
stream, :class:`Wait`, :class:`Now`) and :class:`Emit`\\ s of finished records. Two small
drivers run it: one with a sync ``Mathpix``, one with an ``AsyncMathpix`` (or a sync client in
worker threads). So the sync and async paths cannot drift apart.

Per source:

* images: ``v3/text``, one record;
* PDFs, ``mode="single"``: ``v3/pdf`` (``mmd`` + ``lines.json``), one record;
* PDFs, ``mode="page"``: submitted with ``streaming: true`` and read from
  ``v3/pdf/{id}/stream``; each page is emitted as soon as it and every page before it have
  arrived (page order, whatever order Mathpix sends them in). If the stream breaks, ends
  early or is not served, the flow polls the status and takes the missing pages from
  ``lines.json`` (pages already emitted are not emitted again);
* many PDFs (``api="files"``, or ``api="auto"`` from ``files_threshold`` uncached PDFs in one
  load): one Files API job (an upload or URL submission per document, with a ``custom_id``),
  then each document's pages from its ``lines.json``;
* results are cached in the journal by content + options + region + mode + format;
* one failing source follows ``on_error``; a failure that every source would hit
  (``exc.fatal``: credentials, quota, configuration) always raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

import anyio.to_thread

from .._client import AsyncMathpix, Mathpix
from .._exceptions import (
    ConfigurationError,
    MathpixError,
    NotAllowedError,
    NotFoundError,
    PdfError,
    PollTimeoutError,
    is_fatal,
)
from .._journal import Journal
from .._options import (
    ClientOptions,
    OptionError,
    PdfOptions,
    TextOptions,
    check_keywords,
    check_options,
    suggest,
)
from ._records import (
    OutputFormat,
    Record,
    error_record,
    image_record,
    lines_pages,
    pdf_base,
    pdf_page_record,
    pdf_page_records,
    pdf_single_record,
    record_id,
)
from ._sources import Item, expand, is_url, kind_from_suffix

__all__ = [
    "DEFAULT_FILES_THRESHOLD",
    "Api",
    "CacheOption",
    "ErrorPolicy",
    "LoadMode",
    "RagEngine",
]

_log = logging.getLogger("mathpix_nb")

LoadMode = Literal["single", "page"]
ErrorPolicy = Literal["raise", "skip", "document"]
Api = Literal["auto", "v3", "files"]
CacheOption = bool | str | os.PathLike[str] | Journal

DEFAULT_FILES_THRESHOLD = 25
"""``api="auto"`` sends a load's PDFs through one Files API job from this many uncached PDFs."""

_PAGE_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_TEXT_KEYS = frozenset(TextOptions.__required_keys__ | TextOptions.__optional_keys__)
_PDF_KEYS = frozenset(PdfOptions.__required_keys__ | PdfOptions.__optional_keys__)
_CLIENT_KEYS = frozenset(ClientOptions.__required_keys__ | ClientOptions.__optional_keys__)


# -- operations a flow asks its driver for ---------------------------------------------------


@dataclass(frozen=True)
class Call:
    """Call the public client method ``method(*args, **kwargs)`` and send back its result."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OpenStream:
    """Open ``client.pdf_stream(pdf_id)``; the result is a handle for :class:`NextMessage`."""

    pdf_id: str


@dataclass(frozen=True)
class NextMessage:
    """The stream's next message, or None when it ended."""

    stream: Any


@dataclass(frozen=True)
class CloseStream:
    stream: Any


@dataclass(frozen=True)
class Wait:
    """Sleep on the client's clock."""

    seconds: float


@dataclass(frozen=True)
class Now:
    """The client clock's ``monotonic()``."""


@dataclass(frozen=True)
class Emit:
    """A finished record for the consumer."""

    record: Record


Op = Call | OpenStream | NextMessage | CloseStream | Wait | Now | Emit
Flow = Generator[Op, Any, Any]


# -- drivers ---------------------------------------------------------------------------------


def _do(op: Op, client: Mathpix, streams: list[Any]) -> Any:
    if isinstance(op, Call):
        return getattr(client, op.method)(*op.args, **(op.kwargs or {}))
    if isinstance(op, OpenStream):
        stream = client.pdf_stream(op.pdf_id)
        streams.append(stream)
        return stream
    if isinstance(op, NextMessage):
        return next(op.stream, None)
    if isinstance(op, CloseStream):
        if op.stream in streams:
            streams.remove(op.stream)
        op.stream.close()
        return None
    if isinstance(op, Wait):
        client.clock.sleep(op.seconds)
        return None
    if isinstance(op, Now):
        return client.clock.monotonic()
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


def drive(flow: Flow, client: Mathpix) -> Generator[Record, None, Any]:
    """Run ``flow`` with a sync client: yield its records, return its value."""
    streams: list[Any] = []
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if isinstance(op, Emit):
                yield op.record
                continue
            try:
                value = _do(op, client, streams)
            except Exception as exc:
                error = exc
    finally:
        flow.close()
        for stream in streams:
            stream.close()


def run(flow: Flow, client: Mathpix) -> Any:
    """Run a flow that emits nothing; return its value."""
    records = drive(flow, client)
    while True:
        try:
            next(records)
        except StopIteration as stop:
            return stop.value


class AsyncDriver:
    """Runs flows with an ``AsyncMathpix``, or with a sync ``Mathpix`` in worker threads."""

    def __init__(self, client: Mathpix | AsyncMathpix) -> None:
        self.client = client
        self.threaded = isinstance(client, Mathpix)

    async def _do(self, op: Op, streams: list[Any]) -> Any:
        client = self.client
        if isinstance(op, Wait):
            await client.clock.asleep(op.seconds)
            return None
        if isinstance(op, Now):
            return client.clock.monotonic()
        if isinstance(client, Mathpix):
            return await anyio.to_thread.run_sync(partial(_do, op, client, streams))
        if isinstance(op, Call):
            return await getattr(client, op.method)(*op.args, **(op.kwargs or {}))
        if isinstance(op, OpenStream):
            stream = client.pdf_stream(op.pdf_id)
            streams.append(stream)
            return stream
        if isinstance(op, NextMessage):
            try:
                return await op.stream.__anext__()
            except StopAsyncIteration:
                return None
        if isinstance(op, CloseStream):
            if op.stream in streams:
                streams.remove(op.stream)
            await op.stream.aclose()
            return None
        raise TypeError(f"unknown operation {op!r}")  # pragma: no cover

    async def _close(self, streams: list[Any]) -> None:
        for stream in streams:
            if self.threaded:
                await anyio.to_thread.run_sync(stream.close)
            else:
                await stream.aclose()

    async def drive(self, flow: Flow, emit: Callable[[Record], None]) -> Any:
        """Run ``flow``: hand each record to ``emit``; return the flow's value."""
        streams: list[Any] = []
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    op = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                if isinstance(op, Emit):
                    emit(op.record)
                    continue
                try:
                    value = await self._do(op, streams)
                except Exception as exc:
                    error = exc
        finally:
            flow.close()
            await self._close(streams)


# -- options ---------------------------------------------------------------------------------


def check_choice(name: str, value: Any, alias: Any) -> None:
    allowed = get_args(alias)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def route_options(
    options: Mapping[str, Any] | None,
    image_options: Mapping[str, Any] | None,
    pdf_options: Mapping[str, Any] | None,
    *,
    what: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checked v3/text and v3/pdf options: ``options`` go to each endpoint that takes them."""
    for name, given in (
        ("options", options),
        ("image_options", image_options),
        ("pdf_options", pdf_options),
    ):
        if given is not None and not isinstance(given, Mapping):
            raise OptionError(f"{what}: {name} must be a dict, got {type(given).__name__}.")
    common = dict(options or {})
    for name in common:
        if name not in _TEXT_KEYS and name not in _PDF_KEYS:
            raise OptionError(
                f"{what}: option {name!r} is neither a v3/text nor a v3/pdf option."
                f"{suggest(name, _TEXT_KEYS | _PDF_KEYS)}"
            )
    if "streaming" in common or "streaming" in (pdf_options or {}):
        raise OptionError(
            f"{what}: 'streaming' is set by the loader; pass stream=True/False instead."
        )
    image = check_options(
        TextOptions,
        {**{k: v for k, v in common.items() if k in _TEXT_KEYS}, **(image_options or {})},
        what=f"{what} image_options",
    )
    pdf = check_options(
        PdfOptions,
        {**{k: v for k, v in common.items() if k in _PDF_KEYS}, **(pdf_options or {})},
        what=f"{what} pdf_options",
    )
    return image, pdf


def page_map(spec: str | None) -> list[int] | None:
    """The 1-based page numbers an ascending, positive ``page_ranges`` selects in order
    (``"2,4-6"`` -> [2, 4, 5, 6]); None when the stream's ``page_idx`` cannot be mapped to
    page numbers without the document's page count (negative or unordered ranges)."""
    if not spec or not spec.strip():
        return []
    pages: list[int] = []
    for part in spec.split(","):
        match = _PAGE_RANGE.match(part)
        if match is None:
            return None
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < first or (pages and first <= pages[-1]):
            return None
        pages.extend(range(first, last + 1))
    return pages


def open_journal(cache: CacheOption) -> Journal | None:
    if cache is False or cache is None:
        return None
    if isinstance(cache, Journal):
        return cache
    if cache is True:
        return Journal()
    if isinstance(cache, str | os.PathLike):
        return Journal(cache)
    raise TypeError(f"cache must be True, False, a path or a Journal; got {type(cache).__name__}.")


# -- the engine ------------------------------------------------------------------------------


@dataclass
class _Context:
    region: str
    base_url: str


class RagEngine:
    """Options, clients, cache and the per-source flow shared by every RAG surface."""

    def __init__(
        self,
        *,
        what: str,
        client: Mathpix | None,
        async_client: AsyncMathpix | None,
        app_id: str | None,
        app_key: str | None,
        client_options: Mapping[str, Any],
        output_format: OutputFormat,
        mode: LoadMode,
        on_error: ErrorPolicy,
        options: Mapping[str, Any] | None,
        image_options: Mapping[str, Any] | None,
        pdf_options: Mapping[str, Any] | None,
        stream: bool | None,
        api: Api,
        files_threshold: int,
        pdf_timeout: float | None,
        max_concurrency: int,
        max_files: int,
        cache: CacheOption,
    ) -> None:
        self.what = what
        check_choice("output_format", output_format, OutputFormat)
        check_choice("mode", mode, LoadMode)
        check_choice("on_error", on_error, ErrorPolicy)
        check_choice("api", api, Api)
        for name, number in (
            ("max_concurrency", max_concurrency),
            ("max_files", max_files),
            ("files_threshold", files_threshold),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(f"{name} must be a positive int, got {number!r}.")
        if stream is not None and not isinstance(stream, bool):
            raise ValueError(f"stream must be True, False or None (auto), got {stream!r}.")
        if pdf_timeout is not None and (
            isinstance(pdf_timeout, bool)
            or not isinstance(pdf_timeout, int | float)
            or not pdf_timeout > 0
        ):
            raise ValueError(f"pdf_timeout must be seconds > 0, got {pdf_timeout!r}.")
        check_keywords(
            f"{what}()",
            client_options,
            sorted(_CLIENT_KEYS),
            hint=" Client settings are those of Mathpix(...) (see ClientOptions).",
        )
        credentials = {"app_id": app_id, "app_key": app_key, **client_options}
        given = sorted(k for k, v in credentials.items() if v is not None)
        if (client is not None or async_client is not None) and given:
            raise ConfigurationError(
                f"{what} got both a client and client settings ({', '.join(given)}); "
                "configure the client you pass, or drop client= and pass the settings."
            )
        self.client = client
        self.async_client = async_client
        self.app_id, self.app_key = app_id, app_key
        self.client_options = {k: v for k, v in client_options.items() if v is not None}
        self.output_format: OutputFormat = output_format
        self.mode: LoadMode = mode
        self.on_error: ErrorPolicy = on_error
        self.image_options, self.pdf_options = route_options(
            options, image_options, pdf_options, what=what
        )
        pages = page_map(self.pdf_options.get("page_ranges"))
        if stream is True and pages is None:
            raise ConfigurationError(
                f"{what}: stream=True needs page_ranges in ascending order with positive "
                f"numbers (got {self.pdf_options['page_ranges']!r}): the stream numbers "
                "selected pages from 1. Fix: use such ranges, or stream=False / None."
            )
        self.page_numbers = pages or []
        self.streams = mode == "page" and stream is not False and pages is not None
        self.api: Api = api
        self.files_threshold = files_threshold
        self.pdf_timeout = float(pdf_timeout) if pdf_timeout is not None else 600.0
        self.max_concurrency = max_concurrency
        self.max_files = max_files
        self.cache = cache
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()

    # -- clients and checks ------------------------------------------------------------------
    def make_client(self) -> tuple[Mathpix, bool]:
        if self.client is not None:
            return self.client, False
        return Mathpix(self.app_id, self.app_key, **self.client_options), True

    def make_async_client(self) -> tuple[Mathpix | AsyncMathpix, bool]:
        """The async client, or the caller's sync client (run in threads)."""
        if self.async_client is not None:
            return self.async_client, False
        if self.client is not None:
            return self.client, False
        return AsyncMathpix(self.app_id, self.app_key, **self.client_options), True

    def _can_send_pdfs(self) -> bool:
        for client in (self.client, self.async_client):
            if client is not None:
                return client.can_async
        try:
            probe = Mathpix(self.app_id, self.app_key, **self.client_options)
        except MathpixError:
            return True  # the client reports missing credentials itself when it is built
        try:
            return probe.can_async
        finally:
            probe.close()

    @property
    def uses_app_token(self) -> bool:
        for client in (self.client, self.async_client):
            if client is not None:
                return client.auth_mode == "app_token"
        return bool(
            self.client_options.get("app_token")
            or self.client_options.get("token_url")
            or self.client_options.get("use_app_tokens")
        )

    def preflight(self, items: Iterable[Item]) -> None:
        """Refuse PDFs in app-token-only mode before any request is sent."""
        pdfs = [it.source for it in items if it.kind == "pdf" and it.error is None]
        if pdfs and not self._can_send_pdfs():
            shown = ", ".join(repr(s) for s in pdfs[:3]) + (" ..." if len(pdfs) > 3 else "")
            raise NotAllowedError(
                f"PDFs cannot be processed with an app token (Mathpix accepts app tokens on "
                f"v3/text only), and these sources are PDFs: {shown}. Use app_id/app_key for "
                f"PDFs, or load only images in app-token mode."
            )

    def preflight_named(self, sources: Iterable[Any]) -> None:
        """At construction: PDFs named by path or URL, without touching the disk."""
        named = []
        for source in sources:
            if isinstance(source, str | os.PathLike):
                text = str(source)
                path = text.split("?")[0] if is_url(text) else text
                if kind_from_suffix(path) == "pdf":
                    named.append(Item(text, "pdf"))
        self.preflight(named)

    def items(
        self, sources: Iterable[Any], convert: Callable[[Any], Item | None] | None = None
    ) -> list[Item]:
        items = [
            it for src in sources for it in expand(src, max_files=self.max_files, convert=convert)
        ]
        return self.check_items(items)

    def check_items(self, items: list[Item]) -> list[Item]:
        """``on_error="raise"`` raises the first source error; PDFs in token mode refused."""
        if self.on_error == "raise":
            for it in items:
                if it.error is not None:
                    raise it.error
        self.preflight(items)
        return items

    # -- cache -------------------------------------------------------------------------------
    def journal(self) -> Journal | None:
        with self._journal_lock:  # worker threads may race to open it
            if self._journal is None and self.cache is not False:
                self._journal = open_journal(self.cache)
            return self._journal

    def close_journal(self) -> None:
        """Close a journal we opened (one the caller passed in stays open)."""
        with self._journal_lock:
            if self._journal is not None and not isinstance(self.cache, Journal):
                self._journal.close()
            self._journal = None

    def cache_key(self, item: Item, ctx: _Context) -> str | None:
        """Content hash + options + region + how we render, or None (URLs: what a URL
        serves can change; errors)."""
        if self.cache is False or item.url is not None or item.error is not None:
            return None
        digest = item.content_sha256()
        if digest is None:
            return None
        opts = self.pdf_options if item.kind == "pdf" else self.image_options
        extra = {
            "surface": "rag",
            "v": 2,
            "kind": item.kind,
            "mode": self.mode if item.kind == "pdf" else "single",
            "output_format": self.output_format,
            "base_url": ctx.base_url,
        }
        return Journal.make_key(digest, opts, region=ctx.region, extra=extra)

    def cached(self, item: Item, key: str | None) -> list[Record] | None:
        journal = self.journal() if key is not None else None
        result = journal.lookup(key) if journal is not None and key is not None else None
        if not result or not isinstance(result.get("records"), list):
            return None
        records = [Record.from_json(r) for r in result["records"]]
        for record in records:  # the same content may come back under another name
            record.metadata.update(dict(item.metadata))
            if record.metadata.get("source") != item.source:
                record.metadata["source"] = item.source
                record.id = record_id(item.source, record.metadata.get("page"), record.text)
        return records

    def remember(self, item: Item, key: str | None, records: list[Record]) -> None:
        journal = self.journal() if key is not None else None
        if journal is not None and key is not None:
            journal.done(key, {"records": [r.to_json() for r in records]}, source=item.source)

    # -- per-source flow ---------------------------------------------------------------------
    def context(self, client: Mathpix | AsyncMathpix) -> _Context:
        return _Context(region=client.region or "global", base_url=str(client.base_url or ""))

    def _failed(self, item: Item, exc: BaseException, ctx: _Context) -> Flow:
        if is_fatal(exc) or self.on_error == "raise":
            raise exc
        if self.on_error == "document":
            yield Emit(error_record(item, exc, ctx.region))

    def convert(self, item: Item, ctx: _Context, file_id: str | Exception | None = None) -> Flow:
        """The flow of one source: its records (from the cache, the API, or an error)."""
        if item.error is not None:
            yield from self._failed(item, item.error, ctx)
            return
        emitted: list[Record] = []
        try:
            key = self.cache_key(item, ctx)
            cached = self.cached(item, key)
            if cached is not None:
                for record in cached:
                    yield Emit(record)
                return
            if isinstance(file_id, Exception):
                raise file_id
            if item.kind == "image":
                result = yield Call("text", (item.payload(),), self.image_options)
                emitted.append(image_record(item, result, ctx.region, self.output_format))
                yield Emit(emitted[-1])
            elif file_id is not None:
                yield from self._files_document(item, ctx, file_id, emitted)
            elif self.streams:
                yield from self._streamed_pdf(item, ctx, emitted)
            else:
                yield from self._polled_pdf(item, ctx, emitted)
        except (MathpixError, OSError, ValueError) as exc:
            yield from self._failed(item, exc, ctx)
            return
        self.remember(item, key, emitted)

    def _polled_pdf(self, item: Item, ctx: _Context, out: list[Record]) -> Flow:
        try:
            result = yield Call(
                "pdf",
                (item.payload(),),
                {"outputs": ("mmd", "lines.json"), "timeout": self.pdf_timeout, **self.pdf_options},
            )
        except PollTimeoutError as exc:
            raise self._timeout(exc, item) from None
        pages = lines_pages(result.lines)
        version = result.raw.get("version") if isinstance(result.raw, Mapping) else None
        base = pdf_base(
            item,
            region=ctx.region,
            fmt=self.output_format,
            ids={"pdf_id": result.pdf_id},
            engine=version if isinstance(version, str) else None,
            total_pages=len(pages) or result.num_pages,
        )
        yield from self._emit_pdf(base, pages, result.mmd, out)

    def _emit_pdf(
        self,
        base: Mapping[str, Any],
        pages: list[tuple[int, str, dict[str, Any]]],
        mmd: str | None,
        out: list[Record],
    ) -> Flow:
        if self.mode == "page" and pages:
            records = pdf_page_records(base, pages, self.output_format)
        else:
            records = [pdf_single_record(base, mmd, [s for _, _, s in pages], self.output_format)]
        for record in records:
            out.append(record)
            yield Emit(record)

    def _page_number(self, index: int) -> int:
        """The page number of the stream's ``page_idx`` (1-based among selected pages)."""
        if self.page_numbers and index <= len(self.page_numbers):
            return self.page_numbers[index - 1]
        return index

    def _streamed_pdf(self, item: Item, ctx: _Context, out: list[Record]) -> Flow:
        pdf_id = yield Call(
            "pdf_submit", (item.payload(),), {**self.pdf_options, "streaming": True}
        )
        base: dict[str, Any] = {}
        total: int | None = None
        next_index = 1
        waiting: dict[int, Mapping[str, Any]] = {}
        stream = None
        try:
            stream = yield OpenStream(pdf_id)
            while total is None or next_index <= total:
                message = yield NextMessage(stream)
                if message is None:
                    break
                index = int(message.get("page_idx") or 0)
                total = int(message.get("pdf_selected_len") or 0) or total
                if index >= next_index:
                    waiting[index] = message
                while next_index in waiting:
                    page = waiting.pop(next_index)
                    if not base:
                        version = page.get("version")
                        base = pdf_base(
                            item,
                            region=ctx.region,
                            fmt=self.output_format,
                            ids={"pdf_id": pdf_id},
                            engine=version if isinstance(version, str) else None,
                            total_pages=total,
                        )
                    number = self._page_number(next_index)
                    record = pdf_page_record(
                        base, number, str(page.get("text") or ""), {}, self.output_format
                    )
                    out.append(record)
                    yield Emit(record)
                    next_index += 1
        except MathpixError as exc:
            if is_fatal(exc):
                raise
            _log.debug("PDF %s: the page stream failed (%s); polling for the rest", pdf_id, exc)
        if stream is not None:
            yield CloseStream(stream)
        if total is not None and next_index > total:
            return
        # The stream broke, ended early or is not served: the rest comes from lines.json.
        status = yield from self._wait_pdf(pdf_id, item)
        lines = yield Call("pdf_download", (pdf_id, "lines.json"))
        pages = lines_pages(json.loads(lines))
        if not base:
            version = status.get("version")
            base = pdf_base(
                item,
                region=ctx.region,
                fmt=self.output_format,
                ids={"pdf_id": pdf_id},
                engine=version if isinstance(version, str) else None,
                total_pages=len(pages) or status.get("num_pages"),
            )
        done = {r.metadata["page"] + 1 for r in out}
        for number, text, stats in pages:
            if number in done:
                continue
            record = pdf_page_record(base, number, text, stats, self.output_format)
            out.append(record)
            yield Emit(record)

    def _timeout(self, exc: PollTimeoutError, item: Item) -> PollTimeoutError:
        """The core's PDF timeout said in the loader's terms (its knob is ``pdf_timeout=``)."""
        head = exc.message.split(" Fix:", 1)[0]
        if item.source not in head:
            head += f" ({item.source})"
        return PollTimeoutError(f"{head} Fix: pass a longer pdf_timeout= to the loader.")

    def _wait_pdf(self, pdf_id: str, item: Item) -> Flow:
        """Wait for the PDF by the core's one polling loop (``pdf_wait``, nothing downloaded:
        0.5 s backing off to 5 s, on the client's clock, within ``pdf_timeout``); its errors
        are said again naming the source and the loader's own knob."""
        try:
            result = yield Call("pdf_wait", (pdf_id,), {"outputs": (), "timeout": self.pdf_timeout})
        except PollTimeoutError as exc:
            raise self._timeout(exc, item) from None
        except PdfError as exc:
            if exc.source is not None:
                raise
            raise PdfError(
                f"{exc.message} (source: {item.source})",
                error_id=exc.error_id,
                detail=exc.detail,
                source=item.source,
                body=exc.body,
            ) from None
        return dict(result.raw)

    # -- many PDFs: the Files API ------------------------------------------------------------
    def files_candidates(self, items: list[Item], ctx: _Context) -> list[int]:
        """Indexes of the PDFs this load sends through the Files API (none: v3/pdf)."""
        if self.api == "v3":
            return []
        chosen = []
        for i, item in enumerate(items):
            if item.kind != "pdf" or item.error is not None:
                continue
            try:
                if self.cached(item, self.cache_key(item, ctx)) is not None:
                    continue
            except OSError:
                continue  # the per-source flow reports it
            chosen.append(i)
        if self.api == "auto" and len(chosen) < self.files_threshold:
            return []
        return chosen

    def files_options(self) -> dict[str, Any]:
        opts = dict(self.pdf_options)
        for name in ("callback_url", "callback_headers", "callback_events", "metadata"):
            opts.pop(name, None)  # the Files API has its own arguments for these
        return opts

    def submit_files(self, items: list[Item], indexes: list[int]) -> Flow:
        """Submit ``indexes`` as one Files API job; returns {index: file_id or error}, or None
        when ``api="auto"`` finds no Files API (HTTP 404): then v3/pdf is used."""
        job_id = f"mathpix-nb-{uuid.uuid4().hex[:20]}"
        options = self.files_options()
        out: dict[int, str | Exception] = {}
        for n, i in enumerate(indexes):
            item = items[i]
            args = {
                "job_id": job_id,
                "custom_id": f"doc-{i:06d}",
                "options": options,
            }
            try:
                if item.url is not None:
                    file_id = yield Call("files_submit", (item.url,), args)
                else:
                    file_id = yield Call(
                        "files_upload", (item.payload(),), {**args, "filename": item.name}
                    )
            except NotFoundError as exc:
                if self.api == "auto" and n == 0:
                    _log.warning("The Files API is not available (%s); using v3/pdf", exc)
                    return None
                out[i] = exc
            except MathpixError as exc:
                if is_fatal(exc):
                    raise
                out[i] = exc
            else:
                out[i] = str(file_id)
        with contextlib.suppress(MathpixError):
            yield Call("files_finalize", (job_id,))
        return out

    def _files_document(self, item: Item, ctx: _Context, file_id: str, out: list[Record]) -> Flow:
        status = yield Call("files_wait", (file_id,), {"timeout": self.pdf_timeout})
        if not status.ok:
            error_id = status.error_id or "pdf_error"
            raise PdfError(
                f"{error_id}: {item.source} failed in the Files API (file {file_id}): "
                f"{status.error_message or 'processing failed'}.",
                error_id=error_id,
                source=item.source,
            )
        lines = yield Call("files_download", (file_id, "lines.json"))
        pages = lines_pages(json.loads(lines))
        mmd = None
        if self.mode == "single" or not pages:
            mmd = (yield Call("files_download", (file_id, "mmd"))).decode("utf-8", "replace")
        base = pdf_base(
            item,
            region=ctx.region,
            fmt=self.output_format,
            ids={"file_id": file_id, "job_id": status.job_id},
            engine=None,
            total_pages=len(pages) or status.num_pages or None,
        )
        yield from self._emit_pdf(base, pages, mmd, out)

    # -- whole loads -------------------------------------------------------------------------
    def iter_records(self, items: list[Item], client: Mathpix) -> Iterator[Record]:
        """Every record of ``items`` in source order, with the sync client."""
        ctx = self.context(client)
        file_ids: dict[int, str | Exception] | None = {}
        indexes = self.files_candidates(items, ctx)
        if indexes:
            file_ids = run(self.submit_files(items, indexes), client)
        for i, item in enumerate(items):
            yield from drive(self.convert(item, ctx, (file_ids or {}).get(i)), client)

    async def aiter_records(
        self, items: list[Item], client: Mathpix | AsyncMathpix
    ) -> AsyncGenerator[Record, None]:
        """Every record in source order while up to ``max_concurrency`` sources are in
        flight (a window of ``4 x max_concurrency`` sources is started ahead); each source's
        records are yielded as they come (a streamed PDF page by page).

        Tasks are asyncio tasks, cancelled if the consumer stops early (no task group is
        held open across a ``yield``)."""
        driver = AsyncDriver(client)
        ctx = self.context(client)
        indexes = self.files_candidates(items, ctx)
        file_ids: dict[int, str | Exception] | None = {}
        if indexes:
            file_ids = await driver.drive(self.submit_files(items, indexes), _no_emit)
        file_ids = file_ids or {}
        limiter = asyncio.Semaphore(self.max_concurrency)
        fatal: list[BaseException] = []
        queues: dict[int, asyncio.Queue[Any]] = {}
        tasks: list[asyncio.Task[None]] = []

        async def one(i: int, queue: asyncio.Queue[Any]) -> None:
            try:
                async with limiter:
                    if fatal:
                        raise fatal[0]
                    flow = self.convert(items[i], ctx, file_ids.get(i))
                    await AsyncDriver(client).drive(flow, queue.put_nowait)
            except Exception as exc:
                if is_fatal(exc) and not fatal:
                    fatal.append(exc)
                queue.put_nowait(_Failed(exc))
            else:
                queue.put_nowait(_DONE)

        window = self.max_concurrency * 4
        started = 0
        try:
            for i in range(len(items)):
                while started < min(len(items), i + window):
                    queue: asyncio.Queue[Any] = asyncio.Queue()
                    queues[started] = queue
                    tasks.append(asyncio.create_task(one(started, queue)))
                    started += 1
                queue = queues.pop(i)
                while True:
                    got = await queue.get()
                    if got is _DONE:
                        break
                    if isinstance(got, _Failed):
                        raise got.exc
                    yield got
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class _Failed:
    exc: BaseException


_DONE = object()


def _no_emit(record: Record) -> None:  # pragma: no cover - submission flows emit nothing
    raise AssertionError(f"unexpected record {record!r}")
