"""``Mathpix`` and ``AsyncMathpix``: thin send paths over one shared, I/O-free core.

Each public method asks ``ClientCore`` (``_protocol.py``) for a flow and drives it: the sync
client with ``httpx.Client`` and ``time.sleep``, the async one with ``httpx.AsyncClient`` and
``anyio.sleep``. Nothing else differs between the two.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from ._config import Settings, resolve_settings
from ._images import ImagePrep, prep_threads
from ._models import AppToken, LatexResult, OcrResult, PdfResult
from ._protocol import ClientCore, Compute, Flow, Sleep
from ._types import Crop, ImageInput

__all__ = ["AsyncMathpix", "Mathpix"]

T = TypeVar("T")


class _BaseMathpix:
    """What both clients share: configuration, the core, properties and the repr."""

    def __init__(
        self,
        app_id: str | None = None,
        app_key: str | None = None,
        *,
        app_token: str | None = None,
        token_url: str | None = None,
        token_auth: str | Mapping[str, str] | None = None,
        use_app_tokens: bool = False,
        token_lifetime: int = 300,
        region: str | None = None,
        base_url: str | None = None,
        region_urls: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 4,
        prepare: bool | ImagePrep = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        settings = resolve_settings(
            app_id,
            app_key,
            app_token=app_token,
            token_url=token_url,
            token_auth=token_auth,
            use_app_tokens=use_app_tokens,
            token_lifetime=token_lifetime,
            region=region,
            base_url=base_url,
            region_urls=region_urls,
            timeout=timeout,
            limits=limits,
            max_retries=max_retries,
        )
        self._core = ClientCore(settings, prepare=prepare)

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
        """'keys' or 'app_token'."""
        return self._core.credentials.mode

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
        app_token: authenticate with a fixed app token instead of keys.
        token_url, token_auth: fetch app tokens from your own token endpoint.
        use_app_tokens: with keys, mint short-lived tokens from ``v3/app-tokens``.
        region: ``"global"`` or ``"eu"``; base_url: any host (wins over region).
        region_urls: override the URL of each region (tests point them at a local server).
        timeout, max_retries, limits: HTTP behaviour; prepare: image preparation.
        http_client: an ``httpx.Client`` to reuse (the caller closes it).

    >>> with Mathpix() as client:                         # doctest: +SKIP
    ...     result = client.text("page.jpg")
    ...     print(result.text, result.confidence)
    """

    def __init__(
        self,
        app_id: str | None = None,
        app_key: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app_id, app_key, **kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.settings.timeout, limits=self.settings.limits
        )

    def _run(self, flow: Flow[T]) -> T:
        """Drive a flow: send its requests, sleep its sleeps, return its result."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
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
                    response = self._http.send(step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
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
        **options: Any,
    ) -> OcrResult:
        """OCR one image with ``v3/text``; ``options`` are the API's request options."""
        return self._run(self._core.text(image, crop=crop, prepare=prepare, **options))

    def latex(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        **options: Any,
    ) -> LatexResult:
        """OCR one equation image with the legacy ``v3/latex`` endpoint."""
        return self._run(self._core.latex(image, crop=crop, prepare=prepare, **options))

    def submit(
        self,
        image: ImageInput,
        *,
        tags: Iterable[str] | str | None = None,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        **options: Any,
    ) -> str:
        """Send an async ``v3/text`` request (keys only); returns its ``request_id``."""
        return self._run(self._core.submit(image, tags=tags, crop=crop, prepare=prepare, **options))

    def ocr_results(self, *, per_page: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Iterate over ``v3/ocr-results`` (keys only), fetching page after page."""
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
        path_or_url: Any,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> PdfResult:
        """Convert a PDF (path, bytes, file or URL): submit, wait, download ``outputs``."""
        return self._run(
            self._core.pdf(
                path_or_url,
                outputs=outputs,
                poll_interval=poll_interval,
                timeout=timeout,
                **options,
            )
        )

    def pdf_submit(
        self, path_or_url: Any, *, outputs: Iterable[str] = ("mmd",), **options: Any
    ) -> str:
        """Submit a PDF; returns its ``pdf_id``."""
        return self._run(self._core.pdf_submit(path_or_url, outputs=outputs, **options))

    def pdf_status(self, pdf_id: str) -> dict[str, Any]:
        """The processing status of a PDF (``status``, ``percent_done``, ...)."""
        return self._run(self._core.pdf_status(pdf_id))

    def pdf_download(self, pdf_id: str, ext: str = "mmd") -> bytes:
        """One output of a completed PDF (``mmd``, ``md``, ``lines.json``, ``docx``...)."""
        return self._run(self._core.pdf_download(pdf_id, ext))

    # -- tokens --------------------------------------------------------------------------
    def app_token(self, expires: int = 300) -> AppToken:
        """Mint a short-lived app token for a browser or another process (keys needed)."""
        return self._run(self._core.app_token(expires))

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


class AsyncMathpix(_BaseMathpix):
    """Asynchronous Mathpix client: the same methods as ``Mathpix``, awaited.

    ``ocr_results()`` returns an async iterator; close with ``await client.aclose()`` or use
    ``async with``.
    """

    def __init__(
        self,
        app_id: str | None = None,
        app_key: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app_id, app_key, **kwargs)
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

    async def _run(self, flow: Flow[T]) -> T:
        """Drive a flow: send its requests, sleep its sleeps, return its result."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
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
                    response = await self._http.send(step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except BaseException:
            flow.close()  # cancelled or failed: let the flow clean up (e.g. a token fetch)
            raise

    async def text(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        **options: Any,
    ) -> OcrResult:
        """OCR one image with ``v3/text``; ``options`` are the API's request options."""
        return await self._run(self._core.text(image, crop=crop, prepare=prepare, **options))

    async def latex(
        self,
        image: ImageInput,
        *,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        **options: Any,
    ) -> LatexResult:
        """OCR one equation image with the legacy ``v3/latex`` endpoint."""
        return await self._run(self._core.latex(image, crop=crop, prepare=prepare, **options))

    async def submit(
        self,
        image: ImageInput,
        *,
        tags: Iterable[str] | str | None = None,
        crop: Crop | None = None,
        prepare: bool | ImagePrep | None = None,
        **options: Any,
    ) -> str:
        """Send an async ``v3/text`` request (keys only); returns its ``request_id``."""
        return await self._run(
            self._core.submit(image, tags=tags, crop=crop, prepare=prepare, **options)
        )

    def ocr_results(self, *, per_page: int = 100, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Iterate (``async for``) over ``v3/ocr-results`` (keys only), page after page."""
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
        path_or_url: Any,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> PdfResult:
        """Convert a PDF (path, bytes, file or URL): submit, wait, download ``outputs``."""
        return await self._run(
            self._core.pdf(
                path_or_url,
                outputs=outputs,
                poll_interval=poll_interval,
                timeout=timeout,
                **options,
            )
        )

    async def pdf_submit(
        self, path_or_url: Any, *, outputs: Iterable[str] = ("mmd",), **options: Any
    ) -> str:
        """Submit a PDF; returns its ``pdf_id``."""
        return await self._run(self._core.pdf_submit(path_or_url, outputs=outputs, **options))

    async def pdf_status(self, pdf_id: str) -> dict[str, Any]:
        """The processing status of a PDF (``status``, ``percent_done``, ...)."""
        return await self._run(self._core.pdf_status(pdf_id))

    async def pdf_download(self, pdf_id: str, ext: str = "mmd") -> bytes:
        """One output of a completed PDF (``mmd``, ``md``, ``lines.json``, ``docx``...)."""
        return await self._run(self._core.pdf_download(pdf_id, ext))

    async def app_token(self, expires: int = 300) -> AppToken:
        """Mint a short-lived app token for a browser or another process (keys needed)."""
        return await self._run(self._core.app_token(expires))

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
