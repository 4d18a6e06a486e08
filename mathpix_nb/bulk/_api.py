"""Thin adapter between the bulk engine and the client core.

The engine drives the core's I/O-free flows (``ClientCore.submit`` / ``text`` /
``ocr_results_page``) with its own ``httpx.AsyncClient`` on its own loop, so a sync ``Mathpix``
works as well as an ``AsyncMathpix``. One rule differs from the clients' driver: a POST whose
connection breaks *after* the upload started is not retried blindly (the image may have
landed); it surfaces as :class:`Unknown` so the engine looks it up by its row tag first.

Every failure is classified into what the engine must do next:

* :class:`Retryable` - the API answered "not now" (429, 5xx, ``sys_exception``) after the
  core's own retries, or the connection was refused: the image did not land;
* :class:`Unknown` - the image may or may not have landed;
* :class:`Failed` - a final answer for this image (``image_no_content``...) or, with
  ``fatal``, for the whole run (bad credentials, quota used up, not allowed).
"""

from __future__ import annotations

import functools
import io
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.to_thread
import httpx

from .._exceptions import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    ImageError,
    NotAllowedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    TransportError,
)
from .._images import ImagePrep, PreparedImage, prepare_image, raw_image
from .._protocol import Compute, Sleep

__all__ = [
    "Api",
    "Failed",
    "ImageError",
    "Retryable",
    "Unknown",
    "core_of",
    "prep_option",
    "prepare",
]

_SHARD = 2  # connections per pool

_SAFE_TRANSPORT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Retryable(Exception):
    def __init__(self, error_id: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.error_id, self.message, self.retry_after = error_id, message, retry_after


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


def core_of(client: Any) -> Any:
    """The ``ClientCore`` of a ``Mathpix``/``AsyncMathpix`` (a new client from the env if None)."""
    if client is None:  # settings from the environment; no HTTP client needed for that
        from .._config import resolve_settings
        from .._protocol import ClientCore

        return ClientCore(resolve_settings())
    core = getattr(client, "_core", None)
    if core is None:
        raise TypeError(
            f"client must be a mathpix_nb.Mathpix or AsyncMathpix, got {type(client).__name__}"
        )
    return core


def prep_option(prepare: Any) -> ImagePrep | None:
    """``True``/``ImagePrep``/dict of ImagePrep fields -> ImagePrep; ``False`` -> None (as is)."""
    if prepare is True:
        return ImagePrep()
    if prepare is False:
        return None
    if isinstance(prepare, ImagePrep):
        return prepare
    if isinstance(prepare, Mapping):
        return ImagePrep(**prepare)
    raise TypeError(f"prepare must be True, False, an ImagePrep or a dict, got {prepare!r}")


def prepare(payload: Any, *, crop: Any, prep: ImagePrep | None, source: str) -> PreparedImage:
    """Prepare local pixels for upload with the client core (``prep=None``: send as is)."""
    if isinstance(payload, bytes | bytearray):
        buf = io.BytesIO(payload)
        buf.name = source  # names the input in messages and the upload's file name
        payload = buf
    if prep is None:
        return raw_image(payload, crop=crop)
    return prepare_image(payload, crop=crop, prep=prep)


def _translate(exc: BaseException) -> Exception:
    if isinstance(exc, QuotaExceededError | AuthenticationError):
        return Failed(exc.error_id or "http_unauthorized", str(exc), fatal=True)
    if isinstance(exc, NotAllowedError | ConfigurationError):
        return Failed("not_allowed", str(exc), fatal=True)
    if isinstance(exc, RateLimitError):
        return Retryable(exc.error_id or "http_max_requests", str(exc), exc.retry_after)
    if isinstance(exc, ServerError):
        return Retryable(exc.error_id or f"http_{exc.status_code}", str(exc))
    if isinstance(exc, APIError):
        return Failed(exc.error_id or "api_error", str(exc), request_id=exc.request_id)
    if isinstance(exc, ImageError):
        return Failed("image_unreadable", str(exc))
    if isinstance(exc, TransportError):
        return Retryable("connection_error", str(exc))
    raise exc


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class Api:
    """The engine's view of the API: submit / text / results, over one AsyncClient."""

    def __init__(self, core: Any, *, connections: int) -> None:
        self.core = core
        # Several small pools instead of one big one: httpcore re-checks every connection of
        # a pool for each request it assigns, so one pool of 32 costs ~16x more CPU per
        # request than pools of 2. Each request goes to the least busy pool.
        shards = max(1, -(-connections // _SHARD))
        tls = _tls_context()  # built once: loading the CA bundle costs ~50 ms each time
        self._pools = [
            httpx.AsyncClient(
                verify=tls,
                limits=httpx.Limits(max_connections=_SHARD, max_keepalive_connections=_SHARD),
            )
            for _ in range(shards)
        ]
        self._busy = [0] * shards
        self.requests = 0
        self.retries = 0

    async def _send(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._pools[i].send(request)
        finally:
            self._busy[i] -= 1

    @property
    def base_url(self) -> str:
        return str(self.core.settings.base_url)

    @property
    def region(self) -> str:
        return str(self.core.settings.region)

    @property
    def auth_mode(self) -> str:
        return str(self.core.credentials.mode)

    @property
    def prep(self) -> ImagePrep | None:
        return self.core.prep  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def _drive(self, flow: Any, *, upload: bool = False) -> Any:
        """Run a core flow. With ``upload``, a connection broken after sending raises Unknown."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    self.retries += 1
                    await anyio.sleep(step.seconds)
                    step = flow.send(None)
                elif isinstance(step, Compute):
                    try:
                        value = await anyio.to_thread.run_sync(step.func)
                    except Exception as exc:
                        step = flow.throw(exc)
                    else:
                        step = flow.send(value)
                else:
                    self.requests += 1
                    if step.method == "POST":
                        step.read()  # one buffer, one write (a multipart stream costs ~10)
                    try:
                        response = await self._send(step)
                    except httpx.TransportError as exc:
                        if (
                            upload
                            and step.method == "POST"
                            and not isinstance(exc, _SAFE_TRANSPORT)
                        ):
                            flow.close()
                            raise Unknown(
                                f"{type(exc).__name__}: {exc or 'connection lost'}"
                            ) from exc
                        step = flow.throw(exc)
                    else:
                        step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    async def submit(
        self, image: Any, *, tags: list[str], options: Mapping[str, Any], crop: Any = None
    ) -> str:
        """POST one image as an async v3/text job; its request id."""
        flow = self.core.submit(image, crop=crop, options=dict(options, tags=tags))
        try:
            return str(await self._drive(flow, upload=True))
        except (Unknown, Failed, Retryable):
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def text(
        self, image: Any, *, options: Mapping[str, Any], crop: Any = None
    ) -> dict[str, Any]:
        """Synchronous v3/text (the fallback path); the response body (errors raise)."""
        try:
            result = await self._drive(self.core.text(image, crop=crop, options=dict(options)))
        except Exception as exc:
            raise _translate(exc) from exc
        return dict(result.raw)

    async def results(
        self,
        tags: list[str],
        *,
        per_page: int,
        include_null: bool = False,
        on_page: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Items of v3/ocr-results carrying all ``tags``, page after page until a short page
        (or until ``on_page(items)`` returns True: the caller has all it needs)."""
        filters: dict[str, Any] = {"tags": list(tags)}
        if include_null:
            filters["include_null_results"] = True
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            try:
                items = await self._drive(self.core.ocr_results_page(filters, page, per_page))
            except Exception as exc:
                raise _translate(exc) from exc
            if on_page is not None:
                if on_page(items) or len(items) < per_page:
                    return out
            else:
                out.extend(items)
                if len(items) < per_page:
                    return out
            page += 1
