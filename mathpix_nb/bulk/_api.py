"""The bulk engine's view of the API: the user's own ``Mathpix`` / ``AsyncMathpix``.

Bulk is a plain user of the public client: ``submit()`` / ``text()`` / ``ocr_results_page()``
on the client it was given, so the user's ``http_client`` (transport, proxies, CA, event
hooks), retry policy and observers see every bulk request. A sync ``Mathpix`` is driven from
worker threads (httpx.Client is thread-safe); an ``AsyncMathpix`` is awaited. With no client,
bulk builds an ``AsyncMathpix`` from the environment over a :class:`ShardedAsyncTransport`.

The engine counts requests and real retries (not token waits) with an observer, and sorts
every failure into what it must do next:

* :class:`Retryable` - the API answered "not now" (429, 5xx, ``sys_exception``) after the
  client's own retries, or the connection failed before the upload: the image did not land;
* :class:`Unknown` - ``SubmissionUncertain``: the image may or may not have landed;
* :class:`Failed` - a final answer for this image (``image_no_content``...) or, with
  ``fatal`` (``MathpixError.fatal``), for the whole run.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

import anyio
import anyio.to_thread
import httpx

from .._client import AsyncMathpix, Mathpix
from .._events import Event
from .._exceptions import (
    APIError,
    ImageError,
    MathpixError,
    RateLimitError,
    ServerError,
    SubmissionUncertain,
    TransportError,
)
from .._images import ImagePrep
from .._transport import ShardedAsyncTransport

__all__ = ["Api", "Failed", "PageVerdict", "Retryable", "Unknown", "client_for_run"]

log = logging.getLogger("mathpix_nb.bulk")


class Retryable(Exception):
    def __init__(
        self,
        error_id: str,
        message: str,
        retry_after: float | None = None,
        *,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_id, self.message, self.retry_after = error_id, message, retry_after
        self.unreachable = unreachable  # the connection itself failed (refused, DNS...)


class Unknown(Exception):
    """The request may or may not have reached the API."""


class Failed(Exception):
    def __init__(
        self,
        error_id: str,
        message: str,
        *,
        request_id: str | None = None,
        permanent: bool = True,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_id, self.message, self.request_id = error_id, message, request_id
        self.permanent, self.fatal = permanent, fatal


AnyClient = Mathpix | AsyncMathpix

#: what a caller of :meth:`Api.results` makes of a page: ``"done"`` (it has all it needs),
#: ``"moved"`` (something new was there: a short page ends this read, the next read starts
#: past it) or ``"more"`` (nothing tells that a short page was complete)
PageVerdict = Literal["done", "moved", "more"]


def client_for_run(client: Any, *, connections: int) -> tuple[AnyClient, httpx.AsyncClient | None]:
    """The client a run uses, and the HTTP client the run built for it (to close; None: the
    user's client, left open).

    ``None``: an ``AsyncMathpix`` from the environment over sharded pools (credentials are
    resolved here, so a missing key fails before any row is read)."""
    if client is None:
        http = httpx.AsyncClient(transport=ShardedAsyncTransport(connections=connections))
        return AsyncMathpix(http_client=http), http  # no connection is opened before use
    if not isinstance(client, Mathpix | AsyncMathpix):
        raise TypeError(
            f"client must be a mathpix_nb.Mathpix or AsyncMathpix, got {type(client).__name__}"
        )
    return client, None


def _error_id(exc: MathpixError, default: str) -> str:
    return getattr(exc, "error_id", None) or default


def _translate(exc: BaseException) -> Exception:
    """A client exception -> what the engine does next (non-Mathpix errors pass through)."""
    if isinstance(exc, SubmissionUncertain):
        return Unknown(str(exc))
    if not isinstance(exc, MathpixError):
        raise exc
    if exc.fatal:
        default = "http_unauthorized" if isinstance(exc, APIError) else "not_allowed"
        return Failed(_error_id(exc, default), str(exc), fatal=True)
    if isinstance(exc, RateLimitError):
        return Retryable(_error_id(exc, "http_max_requests"), str(exc), exc.retry_after)
    if isinstance(exc, ServerError):
        return Retryable(_error_id(exc, f"http_{exc.status_code}"), str(exc))
    if isinstance(exc, APIError):
        return Failed(_error_id(exc, "api_error"), str(exc), request_id=exc.request_id)
    if isinstance(exc, ImageError):
        return Failed("image_unreadable", str(exc))
    if isinstance(exc, TransportError):
        cause = exc.__cause__
        unreachable = isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
        return Retryable("connection_error", str(exc), unreachable=unreachable)
    return Failed(_error_id(exc, "api_error"), str(exc))


class Api:
    """submit / text / results over one public client, counting requests and retries."""

    def __init__(
        self, client: AnyClient, *, concurrency: int, own_http: httpx.AsyncClient | None = None
    ) -> None:
        self.client = client
        self.own_http = own_http
        self.is_async = isinstance(client, AsyncMathpix)
        # sync client: one worker thread per request in flight (plus the poller's)
        self._threads = anyio.CapacityLimiter(max(1, concurrency) + 2)
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        #: v3/ocr-results' own page maximum, when it proved smaller than a per_page asked for
        self.page_cap: int | None = None
        self.longest = 0  # the longest v3/ocr-results page seen
        self._remove = client.add_observer(self._observe)

    def _observe(self, event: Event) -> None:
        if event.kind == "request":
            with self._lock:
                self.requests += 1
        elif event.kind == "retry":  # waits for a token or a poll are not retries
            with self._lock:
                self.retries += 1

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def region(self) -> str:
        return self.client.region

    @property
    def can_async(self) -> bool:
        return self.client.can_async

    @property
    def prep(self) -> ImagePrep | None:
        return self.client.prep

    async def aclose(self) -> None:
        self._remove()
        if self.own_http is not None:
            await self.own_http.aclose()

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method: Callable[..., Any] = getattr(self.client, name)
        try:
            if self.is_async:
                return await method(*args, **kwargs)
            return await anyio.to_thread.run_sync(
                functools.partial(method, *args, **kwargs), limiter=self._threads
            )
        except MathpixError as exc:
            raise _translate(exc) from exc

    async def submit(
        self,
        image: Any,
        *,
        tags: list[str],
        options: Mapping[str, Any],
        crop: Any,
        prepare: ImagePrep | bool,
    ) -> str:
        """POST one image as an async v3/text job; its request id."""
        opts = dict(options, tags=tags)
        return str(await self._call("submit", image, crop=crop, prepare=prepare, **opts))

    async def text(
        self, image: Any, *, options: Mapping[str, Any], crop: Any, prepare: ImagePrep | bool
    ) -> dict[str, Any]:
        """Synchronous v3/text (the fallback path); the response body (errors raise)."""
        result = await self._call("text", image, crop=crop, prepare=prepare, **dict(options))
        return dict(result.raw)

    async def results_page(
        self,
        tags: list[str],
        *,
        page: int,
        per_page: int,
        include_null: bool = False,
        from_date: str | None = None,
        to_date: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of v3/ocr-results carrying all ``tags`` (received since ``from_date``)."""
        filters: dict[str, Any] = {"tags": list(tags)}
        if include_null:
            filters["include_null_results"] = True
        if from_date is not None:
            filters["from_date"] = from_date
        if to_date is not None:
            filters["to_date"] = to_date
        items = await self._call("ocr_results_page", page=page, per_page=per_page, **filters)
        return list(items)

    async def results(
        self,
        tags: list[str],
        *,
        per_page: int,
        include_null: bool = False,
        from_date: str | None = None,
        to_date: str | None = None,
        on_page: Callable[[list[dict[str, Any]]], PageVerdict] | None = None,
    ) -> list[dict[str, Any]]:
        """Items carrying all ``tags``, page after page until the last page (or until
        ``on_page(items)`` says ``"done"``: the caller has all it needs).

        A page shorter than ``per_page`` is the last one when it is also shorter than the
        longest page this run has seen, or when ``on_page`` says ``"moved"`` (it held
        something new, so the caller's next read starts past it). Otherwise it may be cut by
        a server's own silent maximum (Mathpix documents none either way): the next page is
        asked for, and if that holds items the maximum is learned (:attr:`page_cap`) and asked
        for from then on. That costs a request now and then while nothing is known; the
        alternative is results never read and images paid for twice."""
        out: list[dict[str, Any]] = []
        page, maybe_cap = 1, 0
        while True:
            size = min(per_page, self.page_cap) if self.page_cap else per_page
            items = await self.results_page(
                tags,
                page=page,
                per_page=size,
                include_null=include_null,
                from_date=from_date,
                to_date=to_date,
            )
            n = len(items)
            if n and maybe_cap and self.page_cap is None:
                self.page_cap = maybe_cap  # the page before was full after all
                log.warning(
                    "v3/ocr-results gives at most %d items a page (per_page=%d was asked); "
                    "asking for %d from now on",
                    maybe_cap,
                    per_page,
                    maybe_cap,
                )
            maybe_cap = 0
            verdict: PageVerdict = "more"
            if on_page is not None:
                verdict = on_page(items)
            else:
                out.extend(items)
            longest, self.longest = self.longest, max(self.longest, n)
            if verdict == "done":
                return out
            if n < (self.page_cap or size):  # short (a learned cap is a full page)
                if n == 0 or n < longest or verdict == "moved" or self.page_cap is not None:
                    return out
                maybe_cap = n  # as long as any page seen: maybe the server's maximum
            page += 1
