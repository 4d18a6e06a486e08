"""``Mathpix`` and ``AsyncMathpix``: thin send paths over one shared, I/O-free core.

Each public method asks ``ClientCore`` (``_protocol.py``) for a flow and drives it: the sync
client with ``httpx.Client`` and the clock's ``sleep``, the async one with
``httpx.AsyncClient`` and ``asleep``. Nothing else differs between the two. Every surface of
the package (bulk, the loader, the panel, the magic, the CLI) uses these public methods, so
a user's ``http_client`` (transport, proxies, event hooks), observers and clock see all of it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread
import httpx
from typing_extensions import Unpack

from ._account import (
    AccountFlows,
    AppTokenInfo,
    DateLike,
    GroupBy,
    OcrUsage,
    Timespan,
    UsageSummary,
)
from ._batch import BatchFlows, BatchResult, OcrBehavior
from ._clock import Clock
from ._config import Settings, resolve_settings
from ._conversions import ConversionResult, Converter
from ._events import Observer
from ._files_api import FileEntry, FilesApi, FilesJob, FileStatus, JobSubmission
from ._images import ImagePrep, prep_threads
from ._logsafe import install_log_filter
from ._models import AppToken, LatexResult, OcrResult, PdfResult
from ._options import (
    BatchOptions,
    ClientOptions,
    ConversionOptions,
    ConverterResultsFilters,
    LatexOptions,
    OcrResultsFilters,
    OptionError,
    PdfOptions,
    PdfResultsFilters,
    StrokesOptions,
    TextOptions,
    check_keywords,
)
from ._outputs import bind_client
from ._pdf_stream import MAX_ERROR_BODY_BYTES, PdfStreamReader
from ._protocol import ClientCore, Compute, Fetch, Flow, PdfStatusHook, ResponseTooLarge, Sleep
from ._retry import RetryPolicy
from ._strokes import AsyncStrokesSession, StrokesFlows, StrokesInput, StrokesSession, new_session
from ._types import Crop, DocumentInput, ImageInput

__all__ = ["AsyncMathpix", "Mathpix"]

T = TypeVar("T")

_SETTINGS_KEYS = (
    "app_token",
    "token_url",
    "token_auth",
    "use_app_tokens",
    "token_lifetime",
    "proxy_url",
    "proxy_auth",
    "region",
    "base_url",
    "region_urls",
    "timeout",
    "limits",
    "max_retries",
)
_CORE_KEYS = ("retry", "prepare", "clock", "observers")


def _rebuilt(response: httpx.Response, request: httpx.Request, data: bytes) -> httpx.Response:
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=headers, content=data, request=request)


class _BaseMathpix:
    """What both clients share: configuration, the core, properties and the repr."""

    _http_type: type

    def __init__(self, app_id: str | None, app_key: str | None, options: Mapping[str, Any]) -> None:
        name = type(self).__name__
        install_log_filter()
        check_keywords(f"{name}()", options, [*_SETTINGS_KEYS, *_CORE_KEYS, "http_client"])
        settings = resolve_settings(
            app_id, app_key, **{k: options[k] for k in _SETTINGS_KEYS if k in options}
        )
        self._core = ClientCore(
            settings,
            prepare=options.get("prepare", True),
            retry=options.get("retry"),
            clock=options.get("clock"),
            observers=options.get("observers") or (),
        )

    def _check_http_client(self, http_client: Any) -> None:
        if http_client is not None and not isinstance(http_client, self._http_type):
            raise OptionError(
                f"{type(self).__name__}(http_client=...) must be an {self._http_type.__name__}, "
                f"got {type(http_client).__name__}."
            )

    @property
    def settings(self) -> Settings:
        return self._core.settings

    @property
    def region(self) -> str:
        """'global', 'eu', or 'custom' for a base_url outside the known regions."""
        return self._core.settings.region

    @property
    def base_url(self) -> str:
        return self._core.settings.base_url

    @property
    def auth_mode(self) -> str:
        """'keys', 'proxy' (a team proxy adds the key) or 'app_token'."""
        return self._core.credentials.mode

    @property
    def can_async(self) -> bool:
        """True if async jobs, PDFs and ocr-results are allowed (keys or a team proxy)."""
        return self._core.settings.has_keys

    @property
    def clock(self) -> Clock:
        return self._core.clock

    @property
    def retry(self) -> RetryPolicy:
        return self._core.retry

    @property
    def prep(self) -> ImagePrep | None:
        """The client's image preparation (None: images are sent as they are)."""
        return self._core.prep

    def add_observer(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(event)`` for every request, answer, retry and wait of this client.

        Returns a function that removes it again (bulk counts a run's requests this way).
        """
        return self._core.observers.add(observer)

    def remove_observer(self, observer: Observer) -> None:
        self._core.observers.remove(observer)

    def redact(self, text: str) -> str:
        """``text`` with this client's keys and tokens masked (for messages you build)."""
        return self._core.redact(text)

    def __repr__(self) -> str:
        s = self._core.settings
        key = "***" if s.app_key else None
        return (
            f"{type(self).__name__}(region={s.region!r}, base_url={s.base_url!r}, "
            f"auth_mode={self.auth_mode!r}, app_id={s.app_id!r}, app_key={key!r})"
        )


class Mathpix(_BaseMathpix):
    """Synchronous Mathpix client.

    Args:
        app_id, app_key: API keys (default: env ``MATHPIX_APP_ID`` / ``MATHPIX_APP_KEY``).
        http_client: an ``httpx.Client`` to send with (your transport, proxies and event
            hooks; you close it).
        **options: see :class:`~mathpix_nb.ClientOptions` (tokens, team proxy, region,
            timeout, retries, image preparation, clock, observers).

    >>> with Mathpix() as client:                         # doctest: +SKIP
    ...     result = client.text("page.jpg")
    ...     print(result.text, result.confidence)
    """

    _http_type = httpx.Client

    def __init__(
        self,
        app_id: str | None = None,
        app_key: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(app_id, app_key, options)
        self._check_http_client(http_client)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.settings.timeout, limits=self.settings.limits
        )

    def _fetch(self, step: Fetch) -> httpx.Response:
        response = self._http.send(step.request, stream=True)
        try:
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > step.max_bytes:
                    raise ResponseTooLarge(step.max_bytes)
                chunks.append(chunk)
        finally:
            response.close()
        return _rebuilt(response, step.request, b"".join(chunks))

    def _run(self, flow: Flow[T]) -> T:
        """Drive a flow: send its requests, sleep its sleeps, return its result."""
        clock = self._core.clock
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    clock.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                if isinstance(step, Compute):
                    try:
                        value = step.func()
                    except Exception as exc:
                        step = flow.throw(exc)
                    else:
                        step = flow.send(value)
                    continue
                try:
                    response = (
                        self._fetch(step) if isinstance(step, Fetch) else self._http.send(step)
                    )
                except (httpx.TransportError, ResponseTooLarge) as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return bind_client(stop.value, self)  # type: ignore[no-any-return]
        except BaseException:
            flow.close()  # cancelled or failed: let the flow clean up (e.g. a token fetch)
            raise

    # -- images --------------------------------------------------------------------------
    def text(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[TextOptions],
    ) -> OcrResult:
        """OCR one image with ``v3/text``.

        ``crop=(x, y, w, h)`` in pixels of the upright image (also for URLs, which are then
        downloaded and cropped here); ``options`` are the API's (typed: ``TextOptions``);
        options newer than this release go in ``extra_options``.
        """
        flow = self._core.text(
            image, crop=crop, prepare=prepare, options=options, extra_options=extra_options
        )
        return self._run(flow)

    def latex(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[LatexOptions],
    ) -> LatexResult:
        """OCR one equation image with the legacy ``v3/latex`` endpoint."""
        flow = self._core.latex(
            image, crop=crop, prepare=prepare, options=options, extra_options=extra_options
        )
        return self._run(flow)

    def submit(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[TextOptions],
    ) -> str:
        """Send an async ``v3/text`` job (keys or proxy); returns its ``request_id``.

        Raises :class:`~mathpix_nb.SubmissionUncertain` when the connection broke after the
        upload (the job may exist: look for it by ``tags`` before sending it again).
        """
        flow = self._core.submit(
            image,
            crop=crop,
            prepare=prepare,
            options=options,
            extra_options=extra_options,
        )
        return self._run(flow)

    def ocr_results_page(
        self, *, page: int = 1, per_page: int = 100, **filters: Unpack[OcrResultsFilters]
    ) -> list[dict[str, Any]]:
        """One page of ``v3/ocr-results`` (keys or proxy); a short page is the last."""
        return self._run(self._core.ocr_results_page(filters, page, per_page))

    def ocr_results(
        self, *, per_page: int = 100, **filters: Unpack[OcrResultsFilters]
    ) -> Iterator[dict[str, Any]]:
        """Iterate over ``v3/ocr-results`` (keys or proxy), fetching page after page."""
        self._core.check_keys("ocr_results()")

        def pages() -> Iterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = self._run(self._core.ocr_results_page(filters, page, per_page))
                yield from items
                if len(items) < per_page:
                    return

        return pages()

    # -- documents -----------------------------------------------------------------------
    def pdf(
        self,
        path_or_url: DocumentInput,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[PdfOptions],
    ) -> PdfResult:
        """Convert a PDF (path, bytes, file or URL): submit, wait, download ``outputs``;
        ``on_status`` as in :meth:`pdf_wait`."""
        flow = self._core.pdf(
            path_or_url,
            outputs=outputs,
            poll_interval=poll_interval,
            timeout=timeout,
            on_status=on_status,
            options=options,
            extra_options=extra_options,
        )
        return self._run(flow)

    def pdf_wait(
        self,
        pdf_id: str,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
    ) -> PdfResult:
        """Wait for a submitted PDF (``pdf_submit()``, or an id from earlier) and download
        ``outputs`` (``()``: only wait). ``on_status(status)`` is called with each status answer
        (``status``, ``num_pages_completed``, ``num_pages``...), e.g. to draw progress; an
        exception it raises ends the wait. ``timeout`` (default 600 s) and the polls run on the
        client's clock; ``poll_interval=None`` backs off from 0.5 s to 5 s."""
        flow = self._core.pdf_wait(
            pdf_id,
            outputs=outputs,
            poll_interval=poll_interval,
            timeout=timeout,
            on_status=on_status,
        )
        return self._run(flow)

    def pdf_submit(
        self,
        path_or_url: DocumentInput,
        *,
        outputs: Iterable[str] = ("mmd",),
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[PdfOptions],
    ) -> str:
        """Submit a PDF; returns its ``pdf_id``."""
        flow = self._core.pdf_submit(
            path_or_url, outputs=outputs, options=options, extra_options=extra_options
        )
        return self._run(flow)

    def pdf_status(self, pdf_id: str) -> dict[str, Any]:
        """The processing status of a PDF (``status``, ``percent_done``, ...)."""
        return self._run(self._core.pdf_status(pdf_id))

    def pdf_download(self, pdf_id: str, ext: str = "mmd") -> bytes:
        """One output of a completed PDF (``mmd``, ``md``, ``lines.json``, ``docx``...)."""
        return self._run(self._core.pdf_download(pdf_id, ext))

    def pdf_stream(self, pdf_id: str) -> Iterator[dict[str, Any]]:
        """The pages of a PDF submitted with ``streaming=True``, as Mathpix finishes them.

        Each item is the API's message: ``text`` (the page's Mathpix Markdown), ``page_idx``
        (1-based among the selected pages), ``pdf_selected_len``, ``pdf_id``, ``version``.
        The docs do not promise page order. The stream is opened when you start iterating,
        is not retried (a break raises ``TransportError``: what was read stays read, and
        ``pdf_status()`` / ``pdf_download()`` give the rest), and is closed when you stop.
        """
        reader = PdfStreamReader(self._core, pdf_id)

        def pages() -> Iterator[dict[str, Any]]:
            request = reader.request()
            reader.emit("request", request)
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                reader.emit("response", request, error=type(exc).__name__)
                raise reader.transport_error(exc, request) from exc
            try:
                reader.emit("response", request, status_code=response.status_code)
                if response.status_code != 200:
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > MAX_ERROR_BODY_BYTES:
                            break
                    raise reader.error(response, bytes(body[:MAX_ERROR_BODY_BYTES]))
                reader.check(response)
                for chunk in response.iter_bytes():
                    yield from reader.feed(chunk)
                yield from reader.finish()
            except httpx.TransportError as exc:
                raise reader.transport_error(exc, request) from exc
            finally:
                response.close()

        return pages()

    # -- tokens --------------------------------------------------------------------------
    def app_token(
        self,
        expires: int = 300,
        *,
        include_strokes_session_id: bool = False,
        user_id: str | None = None,
    ) -> AppToken:
        """Mint a short-lived app token for a browser or another process (keys, the team
        proxy, or a ``token_url``). ``include_strokes_session_id=True`` opens a live strokes
        session with it (``.strokes_session_id``; at most 300 s)."""
        return self._run(
            self._core.app_token(
                expires, include_strokes_session_id=include_strokes_session_id, user_id=user_id
            )
        )

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Mathpix:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- Files API (/files/v1) ---------------------------------------------------------------
    # Flows in _files_api.py; keys only (the Files API takes no app tokens).
    def files_submit(
        self,
        source_uri: str,
        *,
        outputs: Iterable[str] = (),
        job_id: str | None = None,
        custom_id: str | None = None,
        filename: str | None = None,
        destination_uri: str | None = None,
        destination_basename: str | None = None,
        s3_region: str | None = None,
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Submit one document by ``https://`` URL or ``s3://`` / ``gs://`` / Azure URI to the
        Files API; returns its ``file_id``. ``outputs``: formats besides mmd (``"md"``,
        ``"docx"``...); ``options``: v3/pdf OCR options (``page_ranges``, ``rm_spaces``...)."""
        return self._run(
            FilesApi(self._core).submit(
                source_uri,
                outputs=outputs,
                job_id=job_id,
                custom_id=custom_id,
                filename=filename,
                destination_uri=destination_uri,
                destination_basename=destination_basename,
                s3_region=s3_region,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    def files_upload(
        self,
        document: Any,
        *,
        outputs: Iterable[str] = (),
        job_id: str | None = None,
        custom_id: str | None = None,
        filename: str | None = None,
        destination_uri: str | None = None,
        destination_basename: str | None = None,
        s3_region: str | None = None,
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload one document (path, bytes or binary file) to the Files API; returns its
        ``file_id``. The arguments are those of ``files_submit``."""
        return self._run(
            FilesApi(self._core).upload(
                document,
                outputs=outputs,
                job_id=job_id,
                custom_id=custom_id,
                filename=filename,
                destination_uri=destination_uri,
                destination_basename=destination_basename,
                s3_region=s3_region,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    def files_job(
        self,
        files: Iterable[str | Mapping[str, Any]],
        *,
        job_id: str | None = None,
        outputs: Iterable[str] = (),
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> JobSubmission:
        """Submit up to 200,000 documents in one call: each a source URI or a dict with
        ``source_uri`` and optional ``custom_id``, ``filename``, ``destination_uri``,
        ``destination_basename``, ``s3_region``, ``page_ranges``. Per-item failures show up
        later as those files' errors (``files_list(job_id, status="error")``)."""
        return self._run(
            FilesApi(self._core).submit_job(
                files,
                job_id=job_id,
                outputs=outputs,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    def files_job_status(self, job_id: str) -> FilesJob:
        """A Files API job's status and counters (``file_count``, ``files_completed``...)."""
        return self._run(FilesApi(self._core).job_status(job_id))

    def files_wait_job(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> FilesJob:
        """Poll a job until every file is final (default timeout one hour)."""
        return self._run(
            FilesApi(self._core).wait_job(job_id, timeout=timeout, poll_interval=poll_interval)
        )

    def files_finalize(self, job_id: str) -> dict[str, Any]:
        """Close a job to new files, so its ``job.completed`` webhook can fire."""
        return self._run(FilesApi(self._core).finalize(job_id))

    def files_list(
        self, job_id: str, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[FileEntry]:
        """Iterate over a job's files, page after page; ``status``: ``"pending"``,
        ``"completed"`` or ``"error"`` (entries carry a status only when filtered)."""
        api = FilesApi(self._core)

        def entries() -> Iterator[FileEntry]:
            token: str | None = None
            while True:
                page, token = self._run(
                    api.files_page(job_id, status=status, limit=page_size, paging_state=token)
                )
                yield from page
                if not token:
                    return

        return entries()

    def files_jobs(
        self, *, start: str | None = None, end: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the account's jobs, newest first (``start``/``end``: yyyy-mm-dd)."""
        api = FilesApi(self._core)

        def jobs() -> Iterator[dict[str, Any]]:
            token: str | None = None
            while True:
                page, token = self._run(
                    api.jobs_page(start=start, end=end, limit=page_size, paging_state=token)
                )
                yield from page
                if not token:
                    return

        return jobs()

    def files_status(self, file_id: str) -> FileStatus:
        """A Files API document's status (pages, percent done, per-format states, error)."""
        return self._run(FilesApi(self._core).status(file_id))

    def files_by_custom_id(self, job_id: str, custom_id: str) -> FileStatus:
        """The status of the file a job knows by your ``custom_id``."""
        return self._run(FilesApi(self._core).by_custom_id(job_id, custom_id))

    def files_wait(
        self,
        file_id: str,
        *,
        formats: bool = True,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> FileStatus:
        """Poll a document until it is final (``formats=True``: its formats too); returns the
        last status, also an ``error`` one (check ``.ok``)."""
        return self._run(
            FilesApi(self._core).wait(
                file_id, formats=formats, timeout=timeout, poll_interval=poll_interval
            )
        )

    def files_download(self, file_id: str, ext: str = "mmd") -> bytes:
        """One output of a Files API document (``mmd``, ``lines.json`` or a requested format)."""
        return self._run(FilesApi(self._core).download(file_id, ext))

    def files_delete(self, file_id: str) -> dict[str, Any]:
        """Delete a finished document and its results (idempotent)."""
        return self._run(FilesApi(self._core).delete(file_id))

    def files_identities(self) -> dict[str, Any]:
        """The Mathpix identities (and your ``external_id``) to grant bucket access to."""
        return self._run(FilesApi(self._core).identities())

    def files_data_source_register(
        self,
        provider: str,
        bucket: str,
        auth_method: str,
        details: Mapping[str, str],
        *,
        name: str | None = None,
        region: str | None = None,
        secret: str | None = None,
    ) -> str:
        """Register a bucket (``provider`` aws/gcp/azure); returns the data_source_id."""
        return self._run(
            FilesApi(self._core).data_source_register(
                provider, bucket, auth_method, details, name=name, region=region, secret=secret
            )
        )

    def files_data_sources(self) -> list[dict[str, Any]]:
        """The registered data sources (secrets are never returned)."""
        return self._run(FilesApi(self._core).data_sources())

    def files_data_source_test(self, data_source_id: str) -> dict[str, Any]:
        """Probe a data source: ``{"result": "ok"|"failed", "checks", "message"}``."""
        return self._run(FilesApi(self._core).data_source_test(data_source_id))

    def files_data_source_delete(self, data_source_id: str) -> dict[str, Any]:
        """Remove a data source registration (the cloud-side grant stays)."""
        return self._run(FilesApi(self._core).data_source_delete(data_source_id))

    def files_webhook_secret(self) -> str:
        """The webhook signing secret (check deliveries with ``verify_webhook``)."""
        return self._run(FilesApi(self._core).webhook_secret())

    def files_webhook_test(
        self, callback_url: str, callback_headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Send one signed test notification: ``{"status", "response_code", "detail"}``."""
        return self._run(FilesApi(self._core).webhook_test(callback_url, callback_headers))

    # -- conversions, usage, PDF history, app tokens, batch, strokes -------------------------
    # Flows in _conversions.py, _account.py, _batch.py and _strokes.py (docs/client.md).
    def convert(
        self,
        mmd: str,
        formats: Iterable[str] | str = ("docx",),
        *,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
        errors: Literal["raise", "keep"] = "raise",
        extra_options: Mapping[str, Any] | None = None,
    ) -> ConversionResult:
        """Convert Mathpix Markdown with ``v3/converter`` (``docx``, ``tex.zip``, ``pdf``,
        ``latex.pdf``, ``html``, ``md``, ``pptx``, ...): submit, wait, download each format.
        ``errors="keep"`` returns the formats that worked beside ``.errors``."""
        return self._run(
            Converter(self._core).convert(
                mmd,
                formats,
                conversion_options=conversion_options,
                extra_options=extra_options,
                timeout=timeout,
                poll_interval=poll_interval,
                errors=errors,
            )
        )

    def convert_submit(
        self,
        mmd: str,
        formats: Iterable[str] | str = ("docx",),
        *,
        conversion_options: ConversionOptions | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a ``v3/converter`` job; its ``conversion_id``."""
        return self._run(
            Converter(self._core).submit(
                mmd, formats, conversion_options=conversion_options, extra_options=extra_options
            )
        )

    def convert_status(self, conversion_id: str) -> dict[str, Any]:
        """``{"status", "conversion_status": {format: {"status", "error_info"?}}}``."""
        return self._run(Converter(self._core).status(conversion_id))

    def convert_download(self, conversion_id: str, ext: str) -> bytes:
        """One finished format of a conversion (``mmd`` too); ``PdfError`` ``not_ready``
        while it converts."""
        return self._run(Converter(self._core).download(conversion_id, ext))

    def convert_delete(self, conversion_id: str) -> dict[str, Any]:
        """Delete a conversion's outputs at Mathpix; the final status with ``deleted_at``."""
        return self._run(Converter(self._core).delete(conversion_id))

    def converter_results(
        self, *, per_page: int = 100, **filters: Unpack[ConverterResultsFilters]
    ) -> Iterator[dict[str, Any]]:
        """Iterate over past conversions (``v3/converter-results``), page after page."""
        self._core.check_keys("converter_results()")
        flows = AccountFlows(self._core)

        def pages() -> Iterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = self._run(flows.converter_results_page(filters, page, per_page))
                yield from items
                if len(items) < per_page:
                    return

        return pages()

    def ocr_result(
        self, request_id: str, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> OcrResult:
        """Wait for the result of an async ``submit()`` (polls ``v3/ocr-results``)."""
        return self._run(
            AccountFlows(self._core).ocr_result(
                request_id, timeout=timeout, poll_interval=poll_interval
            )
        )

    def pdf_delete(self, pdf_id: str) -> dict[str, Any]:
        """Permanently delete a PDF's outputs at Mathpix; its last status with ``deleted_at``."""
        return self._run(AccountFlows(self._core).pdf_delete(pdf_id))

    def pdf_results_page(
        self, *, page: int = 1, per_page: int = 100, **filters: Unpack[PdfResultsFilters]
    ) -> list[dict[str, Any]]:
        """One page of ``v3/pdf-results`` (keys or proxy); a short page is the last."""
        return self._run(AccountFlows(self._core).pdf_results_page(filters, page, per_page))

    def pdf_results(
        self, *, per_page: int = 100, **filters: Unpack[PdfResultsFilters]
    ) -> Iterator[dict[str, Any]]:
        """Iterate over past PDFs (``v3/pdf-results``: ``id``, ``status``, ``num_pages``...),
        page after page; ``from_date``/``to_date``/``app_id``/``pdf_id`` filter."""
        self._core.check_keys("pdf_results()")
        flows = AccountFlows(self._core)

        def pages() -> Iterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = self._run(flows.pdf_results_page(filters, page, per_page))
                yield from items
                if len(items) < per_page:
                    return

        return pages()

    def ocr_usage(
        self,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        group_by: GroupBy | Sequence[GroupBy] | None = None,
        timespan: Timespan | None = None,
        app_id: str | None = None,
        usage_type: str | None = None,
        request_args_hash: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> OcrUsage:
        """``v3/ocr-usage``: request counts per usage type and time bucket."""
        return self._run(
            AccountFlows(self._core).ocr_usage(
                from_date=from_date,
                to_date=to_date,
                group_by=group_by,
                timespan=timespan,
                app_id=app_id,
                usage_type=usage_type,
                request_args_hash=request_args_hash,
                page=page,
                per_page=per_page,
            )
        )

    def usage_summary(self, from_date: DateLike, to_date: DateLike | None = None) -> UsageSummary:
        """How many images, PDF pages and strokes requests ``[from_date, to_date)`` cost
        (``from_date``: a datetime, ISO string or epoch seconds, e.g. a run's start)."""
        return self._run(AccountFlows(self._core).usage_summary(from_date, to_date))

    def app_token_get(self, token: str | AppToken) -> AppTokenInfo:
        """Who an app token belongs to and when it expires; ``TokenError`` if unknown."""
        return self._run(AccountFlows(self._core).app_token_get(token))

    def app_token_delete(self, token: str | AppToken) -> AppTokenInfo:
        """Revoke an app token now (e.g. when a browser session ends)."""
        return self._run(AccountFlows(self._core).app_token_delete(token))

    def batch(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        timeout: float | None = None,
        poll_interval: float | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult:
        """OCR many image URLs with one ``v3/batch`` request and wait for every key: results
        per key, and per-key errors in ``.errors``. Not for latency-sensitive work."""
        return self._run(
            BatchFlows(self._core).batch(
                urls,
                ocr_behavior=ocr_behavior,
                timeout=timeout,
                poll_interval=poll_interval,
                options=options,
                extra_options=extra_options,
            )
        )

    def batch_submit(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> str:
        """Start a ``v3/batch``; its ``batch_id``."""
        return self._run(
            BatchFlows(self._core).submit(
                urls, ocr_behavior=ocr_behavior, options=options, extra_options=extra_options
            )
        )

    def batch_status(
        self, batch_id: str | int, *, ocr_behavior: OcrBehavior | None = None
    ) -> BatchResult:
        """The results of a batch so far (``.pending`` keys have none yet)."""
        return self._run(BatchFlows(self._core).status(batch_id, ocr_behavior=ocr_behavior))

    def batch_wait(
        self,
        batch_id: str | int,
        *,
        ocr_behavior: OcrBehavior | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> BatchResult:
        """Poll a batch until every key has a result or an error (default 10 minutes)."""
        return self._run(
            BatchFlows(self._core).wait(
                batch_id, ocr_behavior=ocr_behavior, timeout=timeout, poll_interval=poll_interval
            )
        )

    def strokes(
        self,
        strokes: StrokesInput,
        *,
        strokes_session_id: str | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[StrokesOptions],
    ) -> OcrResult:
        """Read handwriting from pen strokes (``v3/strokes``): a list of strokes, each a list
        of (x, y) points, or the API's ``{"x": [[...]], "y": [[...]]}``. Keys, app tokens and
        the team proxy work; for live results while writing, see :meth:`strokes_session`."""
        return self._run(
            StrokesFlows(self._core).strokes(
                strokes,
                options=options,
                extra_options=extra_options,
                strokes_session_id=strokes_session_id,
            )
        )

    def strokes_session(
        self,
        *,
        expires: int = 300,
        token: AppToken | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[StrokesOptions],
    ) -> StrokesSession:
        """A live strokes session: ``session.add(new_strokes)`` reads the whole drawing so far.
        It mints its own session token (keys, proxy or token_url; or pass ``token=``) and
        renews it before it expires (sessions last at most 300 s)."""
        state = new_session(
            self._core, expires=expires, token=token, options=options, extra_options=extra_options
        )
        return StrokesSession(self, state)


class AsyncMathpix(_BaseMathpix):
    """Asynchronous Mathpix client: the same methods as ``Mathpix``, awaited.

    ``ocr_results()`` returns an async iterator; close with ``await client.aclose()`` or use
    ``async with``. ``http_client`` is an ``httpx.AsyncClient``.
    """

    _http_type = httpx.AsyncClient

    def __init__(
        self,
        app_id: str | None = None,
        app_key: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(app_id, app_key, options)
        self._check_http_client(http_client)
        self._owns_http = http_client is None
        self._limiter: anyio.CapacityLimiter | None = None
        self._http = http_client or httpx.AsyncClient(
            timeout=self.settings.timeout, limits=self.settings.limits
        )

    def _compute_limiter(self) -> anyio.CapacityLimiter:
        """Image preparation runs in worker threads, one per core (``prep_threads()``): Pillow
        releases the GIL, so all cores work, and no more images are decoded at once than
        there are cores to decode them (anyio's default pool would allow 40)."""
        limiter = self._limiter
        if limiter is None:
            limiter = self._limiter = anyio.CapacityLimiter(prep_threads())
        return limiter

    async def _fetch(self, step: Fetch) -> httpx.Response:
        response = await self._http.send(step.request, stream=True)
        try:
            chunks, total = [], 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > step.max_bytes:
                    raise ResponseTooLarge(step.max_bytes)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return _rebuilt(response, step.request, b"".join(chunks))

    async def _run(self, flow: Flow[T]) -> T:
        """Drive a flow: send its requests, sleep its sleeps, return its result."""
        clock = self._core.clock
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await clock.asleep(step.seconds)
                    step = flow.send(None)
                    continue
                if isinstance(step, Compute):
                    try:
                        value = await anyio.to_thread.run_sync(
                            step.func, limiter=self._compute_limiter()
                        )
                    except Exception as exc:
                        step = flow.throw(exc)
                    else:
                        step = flow.send(value)
                    continue
                try:
                    if isinstance(step, Fetch):
                        response = await self._fetch(step)
                    else:
                        response = await self._http.send(step)
                except (httpx.TransportError, ResponseTooLarge) as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return bind_client(stop.value, self)  # type: ignore[no-any-return]
        except BaseException:
            flow.close()  # cancelled or failed: let the flow clean up (e.g. a token fetch)
            raise

    async def text(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[TextOptions],
    ) -> OcrResult:
        """OCR one image with ``v3/text``; see :meth:`Mathpix.text`."""
        flow = self._core.text(
            image, crop=crop, prepare=prepare, options=options, extra_options=extra_options
        )
        return await self._run(flow)

    async def latex(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[LatexOptions],
    ) -> LatexResult:
        """OCR one equation image with the legacy ``v3/latex`` endpoint."""
        flow = self._core.latex(
            image, crop=crop, prepare=prepare, options=options, extra_options=extra_options
        )
        return await self._run(flow)

    async def submit(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[TextOptions],
    ) -> str:
        """Send an async ``v3/text`` job; see :meth:`Mathpix.submit`."""
        flow = self._core.submit(
            image,
            crop=crop,
            prepare=prepare,
            options=options,
            extra_options=extra_options,
        )
        return await self._run(flow)

    async def ocr_results_page(
        self, *, page: int = 1, per_page: int = 100, **filters: Unpack[OcrResultsFilters]
    ) -> list[dict[str, Any]]:
        """One page of ``v3/ocr-results`` (keys or proxy); a short page is the last."""
        return await self._run(self._core.ocr_results_page(filters, page, per_page))

    def ocr_results(
        self, *, per_page: int = 100, **filters: Unpack[OcrResultsFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterate (``async for``) over ``v3/ocr-results`` (keys or proxy), page after page."""
        self._core.check_keys("ocr_results()")

        async def pages() -> AsyncIterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = await self._run(self._core.ocr_results_page(filters, page, per_page))
                for item in items:
                    yield item
                if len(items) < per_page:
                    return

        return pages()

    async def pdf(
        self,
        path_or_url: DocumentInput,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[PdfOptions],
    ) -> PdfResult:
        """Convert a PDF (path, bytes, file or URL): submit, wait, download ``outputs``;
        ``on_status`` as in :meth:`pdf_wait`."""
        flow = self._core.pdf(
            path_or_url,
            outputs=outputs,
            poll_interval=poll_interval,
            timeout=timeout,
            on_status=on_status,
            options=options,
            extra_options=extra_options,
        )
        return await self._run(flow)

    async def pdf_wait(
        self,
        pdf_id: str,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
    ) -> PdfResult:
        """Wait for a submitted PDF and download ``outputs``; see :meth:`Mathpix.pdf_wait`
        (``on_status`` is a plain function, called in this task)."""
        flow = self._core.pdf_wait(
            pdf_id,
            outputs=outputs,
            poll_interval=poll_interval,
            timeout=timeout,
            on_status=on_status,
        )
        return await self._run(flow)

    async def pdf_submit(
        self,
        path_or_url: DocumentInput,
        *,
        outputs: Iterable[str] = ("mmd",),
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[PdfOptions],
    ) -> str:
        """Submit a PDF; returns its ``pdf_id``."""
        flow = self._core.pdf_submit(
            path_or_url, outputs=outputs, options=options, extra_options=extra_options
        )
        return await self._run(flow)

    async def pdf_status(self, pdf_id: str) -> dict[str, Any]:
        """The processing status of a PDF (``status``, ``percent_done``, ...)."""
        return await self._run(self._core.pdf_status(pdf_id))

    async def pdf_download(self, pdf_id: str, ext: str = "mmd") -> bytes:
        """One output of a completed PDF (``mmd``, ``md``, ``lines.json``, ``docx``...)."""
        return await self._run(self._core.pdf_download(pdf_id, ext))

    def pdf_stream(self, pdf_id: str) -> AsyncIterator[dict[str, Any]]:
        """The pages of a PDF submitted with ``streaming=True`` (``async for``), as Mathpix
        finishes them; see :meth:`Mathpix.pdf_stream`."""
        reader = PdfStreamReader(self._core, pdf_id)

        async def pages() -> AsyncIterator[dict[str, Any]]:
            request = reader.request()
            reader.emit("request", request)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                reader.emit("response", request, error=type(exc).__name__)
                raise reader.transport_error(exc, request) from exc
            try:
                reader.emit("response", request, status_code=response.status_code)
                if response.status_code != 200:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_ERROR_BODY_BYTES:
                            break
                    raise reader.error(response, bytes(body[:MAX_ERROR_BODY_BYTES]))
                reader.check(response)
                async for chunk in response.aiter_bytes():
                    for message in reader.feed(chunk):
                        yield message
                for message in reader.finish():
                    yield message
            except httpx.TransportError as exc:
                raise reader.transport_error(exc, request) from exc
            finally:
                await response.aclose()

        return pages()

    async def app_token(
        self,
        expires: int = 300,
        *,
        include_strokes_session_id: bool = False,
        user_id: str | None = None,
    ) -> AppToken:
        """Mint a short-lived app token; see :meth:`Mathpix.app_token`."""
        return await self._run(
            self._core.app_token(
                expires, include_strokes_session_id=include_strokes_session_id, user_id=user_id
            )
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMathpix:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- Files API (/files/v1) ---------------------------------------------------------------
    # Flows in _files_api.py; keys only (the Files API takes no app tokens).
    async def files_submit(
        self,
        source_uri: str,
        *,
        outputs: Iterable[str] = (),
        job_id: str | None = None,
        custom_id: str | None = None,
        filename: str | None = None,
        destination_uri: str | None = None,
        destination_basename: str | None = None,
        s3_region: str | None = None,
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Submit one document by ``https://`` URL or ``s3://`` / ``gs://`` / Azure URI to the
        Files API; returns its ``file_id``. ``outputs``: formats besides mmd (``"md"``,
        ``"docx"``...); ``options``: v3/pdf OCR options (``page_ranges``, ``rm_spaces``...)."""
        return await self._run(
            FilesApi(self._core).submit(
                source_uri,
                outputs=outputs,
                job_id=job_id,
                custom_id=custom_id,
                filename=filename,
                destination_uri=destination_uri,
                destination_basename=destination_basename,
                s3_region=s3_region,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    async def files_upload(
        self,
        document: Any,
        *,
        outputs: Iterable[str] = (),
        job_id: str | None = None,
        custom_id: str | None = None,
        filename: str | None = None,
        destination_uri: str | None = None,
        destination_basename: str | None = None,
        s3_region: str | None = None,
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload one document (path, bytes or binary file) to the Files API; returns its
        ``file_id``. The arguments are those of ``files_submit``."""
        return await self._run(
            FilesApi(self._core).upload(
                document,
                outputs=outputs,
                job_id=job_id,
                custom_id=custom_id,
                filename=filename,
                destination_uri=destination_uri,
                destination_basename=destination_basename,
                s3_region=s3_region,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    async def files_job(
        self,
        files: Iterable[str | Mapping[str, Any]],
        *,
        job_id: str | None = None,
        outputs: Iterable[str] = (),
        image_output_mode: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        callback_events: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> JobSubmission:
        """Submit up to 200,000 documents in one call: each a source URI or a dict with
        ``source_uri`` and optional ``custom_id``, ``filename``, ``destination_uri``,
        ``destination_basename``, ``s3_region``, ``page_ranges``. Per-item failures show up
        later as those files' errors (``files_list(job_id, status="error")``)."""
        return await self._run(
            FilesApi(self._core).submit_job(
                files,
                job_id=job_id,
                outputs=outputs,
                image_output_mode=image_output_mode,
                metadata=metadata,
                callback_url=callback_url,
                callback_headers=callback_headers,
                callback_events=callback_events,
                idempotency_key=idempotency_key,
                options=options,
            )
        )

    async def files_job_status(self, job_id: str) -> FilesJob:
        """A Files API job's status and counters (``file_count``, ``files_completed``...)."""
        return await self._run(FilesApi(self._core).job_status(job_id))

    async def files_wait_job(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> FilesJob:
        """Poll a job until every file is final (default timeout one hour)."""
        return await self._run(
            FilesApi(self._core).wait_job(job_id, timeout=timeout, poll_interval=poll_interval)
        )

    async def files_finalize(self, job_id: str) -> dict[str, Any]:
        """Close a job to new files, so its ``job.completed`` webhook can fire."""
        return await self._run(FilesApi(self._core).finalize(job_id))

    def files_list(
        self, job_id: str, *, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[FileEntry]:
        """Iterate (``async for``) over a job's files, page after page; ``status``: ``"pending"``,
        ``"completed"`` or ``"error"`` (entries carry a status only when filtered)."""
        api = FilesApi(self._core)

        async def entries() -> AsyncIterator[FileEntry]:
            token: str | None = None
            while True:
                page, token = await self._run(
                    api.files_page(job_id, status=status, limit=page_size, paging_state=token)
                )
                for entry in page:
                    yield entry
                if not token:
                    return

        return entries()

    def files_jobs(
        self, *, start: str | None = None, end: str | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterate (``async for``) over the account's jobs, newest first (``start``/``end``:
        yyyy-mm-dd)."""
        api = FilesApi(self._core)

        async def jobs() -> AsyncIterator[dict[str, Any]]:
            token: str | None = None
            while True:
                page, token = await self._run(
                    api.jobs_page(start=start, end=end, limit=page_size, paging_state=token)
                )
                for job in page:
                    yield job
                if not token:
                    return

        return jobs()

    async def files_status(self, file_id: str) -> FileStatus:
        """A Files API document's status (pages, percent done, per-format states, error)."""
        return await self._run(FilesApi(self._core).status(file_id))

    async def files_by_custom_id(self, job_id: str, custom_id: str) -> FileStatus:
        """The status of the file a job knows by your ``custom_id``."""
        return await self._run(FilesApi(self._core).by_custom_id(job_id, custom_id))

    async def files_wait(
        self,
        file_id: str,
        *,
        formats: bool = True,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> FileStatus:
        """Poll a document until it is final (``formats=True``: its formats too); returns the
        last status, also an ``error`` one (check ``.ok``)."""
        return await self._run(
            FilesApi(self._core).wait(
                file_id, formats=formats, timeout=timeout, poll_interval=poll_interval
            )
        )

    async def files_download(self, file_id: str, ext: str = "mmd") -> bytes:
        """One output of a Files API document (``mmd``, ``lines.json`` or a requested format)."""
        return await self._run(FilesApi(self._core).download(file_id, ext))

    async def files_delete(self, file_id: str) -> dict[str, Any]:
        """Delete a finished document and its results (idempotent)."""
        return await self._run(FilesApi(self._core).delete(file_id))

    async def files_identities(self) -> dict[str, Any]:
        """The Mathpix identities (and your ``external_id``) to grant bucket access to."""
        return await self._run(FilesApi(self._core).identities())

    async def files_data_source_register(
        self,
        provider: str,
        bucket: str,
        auth_method: str,
        details: Mapping[str, str],
        *,
        name: str | None = None,
        region: str | None = None,
        secret: str | None = None,
    ) -> str:
        """Register a bucket (``provider`` aws/gcp/azure); returns the data_source_id."""
        return await self._run(
            FilesApi(self._core).data_source_register(
                provider, bucket, auth_method, details, name=name, region=region, secret=secret
            )
        )

    async def files_data_sources(self) -> list[dict[str, Any]]:
        """The registered data sources (secrets are never returned)."""
        return await self._run(FilesApi(self._core).data_sources())

    async def files_data_source_test(self, data_source_id: str) -> dict[str, Any]:
        """Probe a data source: ``{"result": "ok"|"failed", "checks", "message"}``."""
        return await self._run(FilesApi(self._core).data_source_test(data_source_id))

    async def files_data_source_delete(self, data_source_id: str) -> dict[str, Any]:
        """Remove a data source registration (the cloud-side grant stays)."""
        return await self._run(FilesApi(self._core).data_source_delete(data_source_id))

    async def files_webhook_secret(self) -> str:
        """The webhook signing secret (check deliveries with ``verify_webhook``)."""
        return await self._run(FilesApi(self._core).webhook_secret())

    async def files_webhook_test(
        self, callback_url: str, callback_headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Send one signed test notification: ``{"status", "response_code", "detail"}``."""
        return await self._run(FilesApi(self._core).webhook_test(callback_url, callback_headers))

    # -- conversions, usage, PDF history, app tokens, batch, strokes -------------------------
    # Flows in _conversions.py, _account.py, _batch.py and _strokes.py (docs/client.md).
    async def convert(
        self,
        mmd: str,
        formats: Iterable[str] | str = ("docx",),
        *,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
        errors: Literal["raise", "keep"] = "raise",
        extra_options: Mapping[str, Any] | None = None,
    ) -> ConversionResult:
        """Convert Mathpix Markdown with ``v3/converter`` (``docx``, ``tex.zip``, ``pdf``,
        ``latex.pdf``, ``html``, ``md``, ``pptx``, ...): submit, wait, download each format.
        ``errors="keep"`` returns the formats that worked beside ``.errors``."""
        return await self._run(
            Converter(self._core).convert(
                mmd,
                formats,
                conversion_options=conversion_options,
                extra_options=extra_options,
                timeout=timeout,
                poll_interval=poll_interval,
                errors=errors,
            )
        )

    async def convert_submit(
        self,
        mmd: str,
        formats: Iterable[str] | str = ("docx",),
        *,
        conversion_options: ConversionOptions | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a ``v3/converter`` job; its ``conversion_id``."""
        return await self._run(
            Converter(self._core).submit(
                mmd, formats, conversion_options=conversion_options, extra_options=extra_options
            )
        )

    async def convert_status(self, conversion_id: str) -> dict[str, Any]:
        """``{"status", "conversion_status": {format: {"status", "error_info"?}}}``."""
        return await self._run(Converter(self._core).status(conversion_id))

    async def convert_download(self, conversion_id: str, ext: str) -> bytes:
        """One finished format of a conversion (``mmd`` too); ``PdfError`` ``not_ready``
        while it converts."""
        return await self._run(Converter(self._core).download(conversion_id, ext))

    async def convert_delete(self, conversion_id: str) -> dict[str, Any]:
        """Delete a conversion's outputs at Mathpix; the final status with ``deleted_at``."""
        return await self._run(Converter(self._core).delete(conversion_id))

    def converter_results(
        self, *, per_page: int = 100, **filters: Unpack[ConverterResultsFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterate (``async for``) over past conversions (``v3/converter-results``)."""
        self._core.check_keys("converter_results()")
        flows = AccountFlows(self._core)

        async def pages() -> AsyncIterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = await self._run(flows.converter_results_page(filters, page, per_page))
                for item in items:
                    yield item
                if len(items) < per_page:
                    return

        return pages()

    async def ocr_result(
        self, request_id: str, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> OcrResult:
        """Wait for the result of an async ``submit()`` (polls ``v3/ocr-results``)."""
        return await self._run(
            AccountFlows(self._core).ocr_result(
                request_id, timeout=timeout, poll_interval=poll_interval
            )
        )

    async def pdf_delete(self, pdf_id: str) -> dict[str, Any]:
        """Permanently delete a PDF's outputs at Mathpix; its last status with ``deleted_at``."""
        return await self._run(AccountFlows(self._core).pdf_delete(pdf_id))

    async def pdf_results_page(
        self, *, page: int = 1, per_page: int = 100, **filters: Unpack[PdfResultsFilters]
    ) -> list[dict[str, Any]]:
        """One page of ``v3/pdf-results`` (keys or proxy); a short page is the last."""
        return await self._run(AccountFlows(self._core).pdf_results_page(filters, page, per_page))

    def pdf_results(
        self, *, per_page: int = 100, **filters: Unpack[PdfResultsFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterate (``async for``) over past PDFs (``v3/pdf-results``), page after page."""
        self._core.check_keys("pdf_results()")
        flows = AccountFlows(self._core)

        async def pages() -> AsyncIterator[dict[str, Any]]:
            for page in itertools.count(1):
                items = await self._run(flows.pdf_results_page(filters, page, per_page))
                for item in items:
                    yield item
                if len(items) < per_page:
                    return

        return pages()

    async def ocr_usage(
        self,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        group_by: GroupBy | Sequence[GroupBy] | None = None,
        timespan: Timespan | None = None,
        app_id: str | None = None,
        usage_type: str | None = None,
        request_args_hash: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> OcrUsage:
        """``v3/ocr-usage``: request counts per usage type and time bucket."""
        return await self._run(
            AccountFlows(self._core).ocr_usage(
                from_date=from_date,
                to_date=to_date,
                group_by=group_by,
                timespan=timespan,
                app_id=app_id,
                usage_type=usage_type,
                request_args_hash=request_args_hash,
                page=page,
                per_page=per_page,
            )
        )

    async def usage_summary(
        self, from_date: DateLike, to_date: DateLike | None = None
    ) -> UsageSummary:
        """How many images, PDF pages and strokes requests ``[from_date, to_date)`` cost
        (``from_date``: a datetime, ISO string or epoch seconds, e.g. a run's start)."""
        return await self._run(AccountFlows(self._core).usage_summary(from_date, to_date))

    async def app_token_get(self, token: str | AppToken) -> AppTokenInfo:
        """Who an app token belongs to and when it expires; ``TokenError`` if unknown."""
        return await self._run(AccountFlows(self._core).app_token_get(token))

    async def app_token_delete(self, token: str | AppToken) -> AppTokenInfo:
        """Revoke an app token now (e.g. when a browser session ends)."""
        return await self._run(AccountFlows(self._core).app_token_delete(token))

    async def batch(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        timeout: float | None = None,
        poll_interval: float | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult:
        """OCR many image URLs with one ``v3/batch`` request and wait for every key: results
        per key, and per-key errors in ``.errors``. Not for latency-sensitive work."""
        return await self._run(
            BatchFlows(self._core).batch(
                urls,
                ocr_behavior=ocr_behavior,
                timeout=timeout,
                poll_interval=poll_interval,
                options=options,
                extra_options=extra_options,
            )
        )

    async def batch_submit(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> str:
        """Start a ``v3/batch``; its ``batch_id``."""
        return await self._run(
            BatchFlows(self._core).submit(
                urls, ocr_behavior=ocr_behavior, options=options, extra_options=extra_options
            )
        )

    async def batch_status(
        self, batch_id: str | int, *, ocr_behavior: OcrBehavior | None = None
    ) -> BatchResult:
        """The results of a batch so far (``.pending`` keys have none yet)."""
        return await self._run(BatchFlows(self._core).status(batch_id, ocr_behavior=ocr_behavior))

    async def batch_wait(
        self,
        batch_id: str | int,
        *,
        ocr_behavior: OcrBehavior | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> BatchResult:
        """Poll a batch until every key has a result or an error (default 10 minutes)."""
        return await self._run(
            BatchFlows(self._core).wait(
                batch_id, ocr_behavior=ocr_behavior, timeout=timeout, poll_interval=poll_interval
            )
        )

    async def strokes(
        self,
        strokes: StrokesInput,
        *,
        strokes_session_id: str | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[StrokesOptions],
    ) -> OcrResult:
        """Read handwriting from pen strokes (``v3/strokes``): a list of strokes, each a list
        of (x, y) points, or the API's ``{"x": [[...]], "y": [[...]]}``. Keys, app tokens and
        the team proxy work; for live results while writing, see :meth:`strokes_session`."""
        return await self._run(
            StrokesFlows(self._core).strokes(
                strokes,
                options=options,
                extra_options=extra_options,
                strokes_session_id=strokes_session_id,
            )
        )

    def strokes_session(
        self,
        *,
        expires: int = 300,
        token: AppToken | None = None,
        extra_options: Mapping[str, Any] | None = None,
        **options: Unpack[StrokesOptions],
    ) -> AsyncStrokesSession:
        """A live strokes session (``await session.add(new_strokes)``); see
        :meth:`Mathpix.strokes_session`."""
        state = new_session(
            self._core, expires=expires, token=token, options=options, extra_options=extra_options
        )
        return AsyncStrokesSession(self, state)
