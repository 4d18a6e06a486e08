"""The I/O-free core shared by ``Mathpix`` and ``AsyncMathpix``.

Every operation is a generator *flow* that yields steps and receives their outcomes:

* an ``httpx.Request``: the driver sends it and sends back the ``httpx.Response`` (or throws
  the ``httpx.TransportError`` into the flow);
* a ``Fetch``: like a request, but the driver reads at most ``max_bytes`` of the answer (a
  user's image URL we download ourselves) and throws ``ResponseTooLarge`` beyond that;
* a ``Sleep``: the driver waits on the client's clock and sends back ``None``;
* a ``Compute``: CPU work (image preparation) the driver runs (the async one in a thread).

The flow's return value is the result. Retries, token refresh, PDF polling, option checks
and events for observers are written once here; the two clients only drive flows (see
``_client.py``), and so does every surface, through the clients' public methods.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, Union

import httpx

from ._auth import Credentials
from ._clock import SYSTEM_CLOCK, Clock
from ._config import Settings
from ._events import Event, Observer, Observers, WaitReason
from ._exceptions import (
    APIError,
    ConfigurationError,
    ImageError,
    PdfError,
    PollTimeoutError,
    RequestTimeout,
    SubmissionUncertain,
    TokenError,
    TransportError,
    error_for,
    redact,
)
from ._image_io import MAX_DOCUMENT_BYTES, read_input
from ._image_pixels import check_crop
from ._images import ImagePrep, PreparedImage, describe_source, is_remote, prepare_image, raw_image
from ._models import AppToken, LatexResult, OcrResult, PdfResult
from ._options import (
    LatexOptions,
    OcrResultsFilters,
    PdfOptions,
    TextOptions,
    check_options,
    merge_extra,
)
from ._retry import RetryPolicy, parse_retry_after
from ._version import __version__

__all__ = [
    "ClientCore",
    "Compute",
    "Fetch",
    "Flow",
    "PdfStatusHook",
    "ResponseTooLarge",
    "Sleep",
]

T = TypeVar("T")

# pdf(on_status=) / pdf_wait(on_status=): called with each v3/pdf status answer; its return
# value is ignored, and an exception it raises ends the wait
PdfStatusHook = Callable[[dict[str, Any]], object]

# Failures after the request went out: the server may have received and acted on it.
# (Connect errors, pool timeouts and write errors mean it did not get a whole request.)
_MAYBE_ACCEPTED: tuple[type[Exception], ...] = (
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class Sleep:
    """A step asking the driver to wait ``seconds`` (on the client's clock) for ``reason``."""

    seconds: float
    reason: WaitReason = "retry"


@dataclass(frozen=True)
class Fetch:
    """A step asking the driver to send ``request`` and read at most ``max_bytes`` of the
    answer (a stream it closes early); beyond that it throws :class:`ResponseTooLarge`."""

    request: httpx.Request
    max_bytes: int


class ResponseTooLarge(Exception):
    """Thrown into a flow by the driver when a ``Fetch`` answer exceeds its ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the answer is larger than {max_bytes:,} bytes")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Compute:
    """A step asking the driver to run CPU work (image preparation) and send back its result.

    The async driver runs it in a worker thread so the event loop stays responsive.
    """

    func: Callable[[], Any]


Step = Union[httpx.Request, Fetch, Sleep, Compute]  # noqa: UP007 - runtime alias
Flow = Generator[Step, Any, T]
Builder = Callable[[dict[str, str]], httpx.Request]

USER_AGENT = f"mathpix_nb/{__version__}"
# Retries are logged at DEBUG (method, path, cause, wait); never headers, bodies or secrets.
_log = logging.getLogger("mathpix_nb")
# Output extensions that always exist after a PDF completes (not conversion formats).
_PDF_NATIVE = {"mmd", "lines.json", "lines.mmd.json"}
# A user's image URL that we download ourselves (to crop it in upright pixels).
MAX_REMOTE_IMAGE_BYTES = 50_000_000


def prep_option(prepare: bool | ImagePrep | Mapping[str, Any] | None) -> ImagePrep | None:
    """``prepare=`` as given to a client or surface -> ``ImagePrep`` (or None: send as is).

    ``True``/``None``: defaults; ``False``: no preparation; a dict: ``ImagePrep`` fields.
    """
    if prepare is None or prepare is True:
        return ImagePrep()
    if prepare is False:
        return None
    if isinstance(prepare, ImagePrep):
        return prepare
    if isinstance(prepare, Mapping):
        from ._options import check_keywords

        fields = ImagePrep.__dataclass_fields__
        check_keywords("ImagePrep", prepare, fields)
        return ImagePrep(**prepare)
    raise ConfigurationError(
        f"prepare must be True, False, an ImagePrep or a dict of its fields, got {prepare!r:.60}"
    )


def _tag_list(tags: Iterable[str] | str | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    items = (tags,) if isinstance(tags, str) else tuple(tags)
    for tag in items:
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError(f"tags must be non-empty strings, got {tag!r:.40}")
    return items


def _response_cause(response: httpx.Response) -> str:
    if response.status_code == 200 and b'"error_info"' in response.content:
        from ._exceptions import error_info

        found = error_info(response.content)
        if found and found.id:
            return found.id
    return f"HTTP {response.status_code}"


def _named_bytes(data: bytes, source: str) -> Any:
    """Bytes that name their source in messages (and the upload's file name)."""
    import io

    buf = io.BytesIO(data)
    buf.name = source.rsplit("/", 1)[-1].split("?")[0] or "image"
    return buf


def _decode_data_uri(uri: str, source: str) -> bytes:
    import base64
    import binascii
    from urllib.parse import unquote_to_bytes

    head, sep, payload = uri.partition(",")
    if not sep:
        raise ImageError(f"{source} is not a valid data: URI (no comma).", source=source)
    if head.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"{source} has invalid base64: {exc}", source=source) from None
    return unquote_to_bytes(payload)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return [_query_value(v) for v in value]
    return value


class ClientCore:
    """Settings, credentials, retry policy and every request/response rule, without I/O.

    ``retry`` replaces the default ``RetryPolicy(max_retries=settings.max_retries)``;
    ``clock`` is where every wait and deadline is measured; ``observers`` receive an
    :class:`~mathpix_nb.Event` for each request, answer, retry and wait.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        prepare: bool | ImagePrep | Mapping[str, Any] | None = True,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(
                f"clock must have time(), monotonic(), sleep() and asleep(), got {clock!r:.60}"
            )
        self.settings = settings
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.credentials = Credentials(settings, self.clock)
        self.retry = retry if retry is not None else RetryPolicy(max_retries=settings.max_retries)
        self.prep = prep_option(prepare)
        self.timeout = settings.timeout.as_dict()
        self.observers = Observers(observers)

    def emit(self, event: Event) -> None:
        if self.observers:
            self.observers.emit(event)

    def redact(self, text: str) -> str:
        """``text`` with this client's secrets (and anything shaped like a token) masked."""
        return redact(text, self.secrets)

    # -- small helpers -------------------------------------------------------------------
    @property
    def secrets(self) -> tuple[str, ...]:
        token = self.credentials.usable_token()
        extra = (token.app_token,) if token else ()
        return self.settings.secrets + extra

    def _request(
        self, method: str, path: str, headers: Mapping[str, str], **kwargs: Any
    ) -> httpx.Request:
        all_headers = {"user-agent": USER_AGENT, **headers}
        return httpx.Request(
            method,
            self.settings.url(path),
            headers=all_headers,
            extensions={"timeout": self.timeout},
            **kwargs,
        )

    def _transport_error(self, exc: Exception, request: httpx.Request, attempts: int) -> Exception:
        host = f"{request.url.scheme}://{request.url.netloc.decode()}"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeout(
                f"{type(exc).__name__}: no answer from {host}{request.url.path} {tries}. "
                "Fix: check the network, or raise timeout= (a float or httpx.Timeout)."
            )
        local = request.url.host in ("127.0.0.1", "localhost")
        fix = (
            "is the local server running?"
            if local
            else "check the network, the region and base_url"
        )
        return TransportError(
            f"{type(exc).__name__} talking to {host}{request.url.path} {tries}: "
            f"{redact(str(exc), self.secrets)}. Fix: {fix}"
        )

    def _maybe_accepted_error(
        self, exc: Exception, request: httpx.Request, tags: tuple[str, ...]
    ) -> SubmissionUncertain:
        host = f"{request.url.scheme}://{request.url.netloc.decode()}"
        where = f"ocr_results(tags={list(tags)!r})" if tags else "ocr_results(tags=[...])"
        return SubmissionUncertain(
            f"{type(exc).__name__}: the connection to {host}{request.url.path} broke after the "
            "request was sent, so Mathpix may have accepted (and billed) it; it was not resent. "
            f"Fix: look for it with {where} and submit again only if it is not there.",
            tags=tags,
        )

    def _raise_for(
        self, response: httpx.Response, body: Any, source: str | None, token_auth: bool
    ) -> None:
        raise error_for(
            response.status_code,
            body,
            source=source,
            headers=response.headers,
            token_auth=token_auth,
            secrets=self.secrets,
        )

    def parse_json(
        self, response: httpx.Response, *, source: str | None = None, token_auth: bool = False
    ) -> dict[str, Any]:
        """The JSON body of a successful answer; raise the mapped APIError otherwise."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 300 or not isinstance(body, dict):
            self._raise_for(
                response, body if body is not None else response.content, source, token_auth
            )
        assert isinstance(body, dict)
        if "error" in body or "error_info" in body:
            self._raise_for(response, body, source, token_auth)
        return body

    @staticmethod
    def is_token_expired(response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        if response.status_code == 200 and "json" in response.headers.get("content-type", ""):
            try:
                body = response.json()
            except ValueError:
                return False
            info = body.get("error_info") if isinstance(body, dict) else None
            return isinstance(info, dict) and info.get("id") == "unauthorized_token_request"
        return False

    # -- the building blocks of every flow -----------------------------------------------
    def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        resend_after_upload: bool = True,
        tags: tuple[str, ...] = (),
    ) -> Flow[httpx.Response]:
        """Send with retries: per-minute 429, 5xx, sys_exception, timeouts, dropped connections.

        ``resend_after_upload=False`` is for requests that start billed work the caller can
        find again by ``tags`` (async submissions): a connection that broke after the request
        went out may have been accepted, so it raises :class:`SubmissionUncertain` instead of
        being resent blindly. (A connect or write failure means the API never got a whole
        request, so those are retried.)
        """
        attempt = 0
        while True:
            request = build()
            response: httpx.Response | None = None
            failure: Exception | None = None
            path = redact(request.url.path)  # v3/app-tokens/{token} carries a token
            self.emit(Event("request", method=request.method, path=path, attempt=attempt))
            try:
                response = yield request
            except httpx.TransportError as exc:
                failure = exc
                self.emit(
                    Event(
                        "response",
                        method=request.method,
                        path=path,
                        attempt=attempt,
                        error=type(exc).__name__,
                    )
                )
                if not resend_after_upload and isinstance(exc, _MAYBE_ACCEPTED):
                    raise self._maybe_accepted_error(exc, request, tags) from exc
                delay = self.retry.delay_after_exception(exc, attempt)
                if delay is None:
                    raise self._transport_error(exc, request, attempt + 1) from exc
            else:
                self.emit(
                    Event(
                        "response",
                        method=request.method,
                        path=path,
                        attempt=attempt,
                        status_code=response.status_code,
                    )
                )
                delay = self.retry.delay_after_response(response, attempt)
                if delay is None:
                    return response
            attempt += 1
            cause = (
                _response_cause(response)
                if isinstance(response, httpx.Response)
                else type(failure).__name__
            )
            reason: WaitReason = (
                "rate_limit"
                if isinstance(response, httpx.Response) and response.status_code == 429
                else "retry"
            )
            self.emit(
                Event(
                    "retry",
                    method=request.method,
                    path=path,
                    attempt=attempt,
                    delay=delay,
                    reason=reason,
                    cause=cause,
                )
            )
            _log.debug(
                "retry %d/%d of %s %s after %s in %.2f s",
                attempt,
                self.retry.max_retries,
                request.method,
                path,
                cause,
                delay,
            )
            yield Sleep(delay, reason)

    def ensure_token(self) -> Flow[AppToken]:
        """A usable app token: the cached one, or a freshly fetched one."""
        creds = self.credentials
        waited = 0.0
        while True:
            token = creds.usable_token()
            if token is not None:
                return token
            if creds.minting and waited < 30.0:
                # another request of this client is fetching one right now: keep using the
                # old token while it is still valid, else wait for the new one
                current = creds.unexpired_token()
                if current is not None:
                    return current
                self.emit(Event("wait", delay=0.02, reason="token"))
                yield Sleep(0.02, "token")
                waited += 0.02
                continue
            creds.minting = True
            try:
                issued = self.clock.time()
                response = yield from self.send(
                    lambda: creds.mint_request(self.timeout, USER_AGENT)
                )
                return creds.accept(response, issued_at=issued)
            finally:
                creds.minting = False

    def call(
        self,
        build: Builder,
        *,
        needs_keys: str | None = None,
        source: str | None = None,
        resend_after_upload: bool = True,
        tags: tuple[str, ...] = (),
    ) -> Flow[dict[str, Any]]:
        """Authenticate, send (with retries), refresh an expired token once, parse the JSON.

        ``needs_keys`` names an operation app tokens cannot do; it is then sent with
        app_id/app_key (or through the team proxy), or refused with NotAllowedError before
        anything is sent.
        """
        response, token = yield from self.call_raw(
            build, needs_keys=needs_keys, resend_after_upload=resend_after_upload, tags=tags
        )
        return self.parse_json(response, source=source, token_auth=token is not None)

    def call_raw(
        self,
        build: Builder,
        *,
        needs_keys: str | None = None,
        resend_after_upload: bool = True,
        tags: tuple[str, ...] = (),
    ) -> Flow[tuple[httpx.Response, AppToken | None]]:
        """Like :meth:`call`, but returns the raw response (and the token it used, if any)."""
        creds = self.credentials
        resend = resend_after_upload
        if needs_keys is not None or not creds.sends_tokens:
            headers = creds.key_headers(needs_keys or "This request")
            response = yield from self.send(
                lambda: build(headers), resend_after_upload=resend, tags=tags
            )
            return response, None
        token = yield from self.ensure_token()
        response = yield from self.send(
            lambda: build(token.headers), resend_after_upload=resend, tags=tags
        )
        if self.is_token_expired(response):
            if not creds.can_refresh:
                raise TokenError(
                    "The app token was refused (expired or invalid). Fix: pass a fresh "
                    "app_token=, or token_url= / use_app_tokens=True so the client refreshes "
                    "tokens itself.",
                    status_code=response.status_code,
                    error_id="unauthorized_token_request",
                )
            creds.invalidate(token)
            token = yield from self.ensure_token()
            response = yield from self.send(lambda: build(token.headers))
        return response, token

    # -- images --------------------------------------------------------------------------
    def fetch_image(self, url: str) -> Flow[bytes]:
        """The bytes behind an http(s) URL or data: URI (bounded; redirects followed)."""
        source = describe_source(url)
        url = url.strip()
        if url.lower().startswith("data:"):
            return _decode_data_uri(url, source)
        for _ in range(6):
            request = httpx.Request(
                "GET", url, headers={"user-agent": USER_AGENT}, extensions={"timeout": self.timeout}
            )
            try:
                response = yield Fetch(request, MAX_REMOTE_IMAGE_BYTES)
            except ResponseTooLarge as exc:
                raise ImageError(
                    f"The image at {source} is larger than {exc.max_bytes:,} bytes. Fix: download "
                    "and downscale it first, or pass it without crop= (Mathpix fetches it).",
                    source=source,
                ) from None
            except httpx.TransportError as exc:
                raise ImageError(
                    f"Cannot download {source} to crop it: {type(exc).__name__}. Fix: check the "
                    "URL, or pass the image file instead.",
                    source=source,
                ) from None
            if response.is_redirect and response.headers.get("location"):
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code != 200:
                raise ImageError(
                    f"Cannot download {source} to crop it: HTTP {response.status_code}. Fix: check "
                    "the URL, or pass the image file instead.",
                    source=source,
                )
            return bytes(response.content)
        raise ImageError(f"Too many redirects downloading {source}.", source=source)

    def image_builder(
        self,
        path: str,
        image: Any,
        options: Mapping[str, Any],
        *,
        crop: tuple[float, float, float, float] | None,
        prepare: bool | ImagePrep | Mapping[str, Any] | None,
    ) -> Flow[tuple[Builder, str]]:
        """A request builder for one image on ``path`` (v3/text, v3/latex) and its source name.

        ``options`` are already checked. ``crop`` is always in pixels of the upright image,
        whatever the input: a URL with a crop is downloaded and cropped here (Mathpix's own
        ``region`` would crop raw pixels, ignoring EXIF); without a crop it is sent as ``src``.
        """
        opts = dict(options)
        if is_remote(image) and crop is None:
            source = describe_source(image)
            body = dict(opts, src=image.strip())
            return (lambda headers: self._request("POST", path, headers, json=body)), source

        prep = self.prep if prepare is None else prep_option(prepare)
        prepared: PreparedImage
        if is_remote(image):
            if crop is not None:  # a malformed crop fails before any download
                check_crop(crop, describe_source(image))
            data = yield from self.fetch_image(image)
            remote = _named_bytes(data, describe_source(image))
            prepared = yield Compute(
                lambda: (
                    prepare_image(remote, crop=crop, prep=prep)
                    if prep is not None
                    else raw_image(remote, crop=crop)
                )
            )
        elif isinstance(image, PreparedImage):
            prepared = image
        elif prep is None:
            prepared = yield Compute(lambda: raw_image(image, crop=crop))
        else:
            prepared = yield Compute(lambda: prepare_image(image, crop=crop, prep=prep))
        options_json = json.dumps(opts, separators=(",", ":"))

        def build(headers: dict[str, str]) -> httpx.Request:
            return self._request(
                "POST",
                path,
                headers,
                files={"file": (prepared.filename, prepared.data, prepared.content_type)},
                data={"options_json": options_json},
            )

        return build, prepared.source

    def text_options(
        self, options: Mapping[str, Any], extra: Mapping[str, Any] | None, *, what: str
    ) -> dict[str, Any]:
        """Checked v3/text options (see :mod:`._options`), ``extra_options`` merged in."""
        if "async" in options:
            raise ConfigurationError(
                f"{what} does not take async: use submit() for async requests (text() waits)."
            )
        if "src" in options:
            raise ConfigurationError("Pass the image as the first argument, not as src=.")
        opts = check_options(
            TextOptions, options, what=what, also=("crop", "prepare", "extra_options")
        )
        if "tags" in opts:
            opts["tags"] = list(_tag_list(opts["tags"]))
        return merge_extra(opts, extra, what=what)

    def text(
        self,
        image: Any,
        *,
        crop: Any = None,
        prepare: Any = None,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[OcrResult]:
        opts = self.text_options(options or {}, extra_options, what="text()")
        build, source = yield from self.image_builder(
            "v3/text", image, opts, crop=crop, prepare=prepare
        )
        body = yield from self.call(build, source=source)
        return OcrResult(raw=body, source=source)

    def latex(
        self,
        image: Any,
        *,
        crop: Any = None,
        prepare: Any = None,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[LatexResult]:
        opts = check_options(
            LatexOptions,
            options or {},
            what="latex()",
            also=("crop", "prepare", "extra_options"),
        )
        opts = merge_extra(opts, extra_options, what="latex()")
        build, source = yield from self.image_builder(
            "v3/latex", image, opts, crop=crop, prepare=prepare
        )
        body = yield from self.call(build, source=source)
        return LatexResult(raw=body, source=source)

    def submit(
        self,
        image: Any,
        *,
        crop: Any = None,
        prepare: Any = None,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[str]:
        """Send one async v3/text job; its ``request_id``. A connection that broke after the
        upload raises :class:`SubmissionUncertain` (never a blind resend)."""
        self.credentials.key_headers("submit() (async v3/text)")  # refuse before preparing
        opts = self.text_options(options or {}, extra_options, what="submit()")
        tag_list = _tag_list(opts.pop("tags", None))
        if tag_list:
            opts["tags"] = list(tag_list)
        opts["async"] = True
        build, source = yield from self.image_builder(
            "v3/text", image, opts, crop=crop, prepare=prepare
        )
        try:
            body = yield from self.call(
                build,
                needs_keys="submit() (async v3/text)",
                source=source,
                resend_after_upload=False,  # a blind resend could start (and bill) a second job
                tags=tag_list,
            )
        except SubmissionUncertain as exc:
            exc.source = source
            raise
        request_id = body.get("request_id")
        if not request_id:
            raise APIError(f"v3/text async answered without request_id (input: {source})")
        return str(request_id)

    # -- results ---------------------------------------------------------------------------
    def ocr_results_page(
        self, filters: Mapping[str, Any], page: int, per_page: int
    ) -> Flow[list[dict[str, Any]]]:
        """One page of ``v3/ocr-results`` (``filters`` as in :class:`OcrResultsFilters`)."""
        checked = check_options(
            OcrResultsFilters,
            filters,
            what="ocr_results()",
            also=("page", "per_page"),
            json_body=False,
        )
        for name, value in (("page", page), ("per_page", per_page)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"ocr_results(): {name} must be an int >= 1, got {value!r}"
                )
        if "tags" in checked:
            checked["tags"] = list(_tag_list(checked["tags"]))
        params: dict[str, Any] = {k: _query_value(v) for k, v in checked.items()}
        params.update(page=page, per_page=per_page)
        build: Builder = lambda headers: self._request(  # noqa: E731
            "GET", "v3/ocr-results", headers, params=params
        )
        body = yield from self.call(build, needs_keys="ocr_results()", source="v3/ocr-results")
        return list(body.get("ocr_results") or [])

    def check_keys(self, what: str) -> None:
        """Raise NotAllowedError now if ``what`` needs keys this client does not have."""
        self.credentials.key_headers(what)

    # -- app tokens ------------------------------------------------------------------------
    def app_token(
        self,
        expires: int = 300,
        *,
        include_strokes_session_id: bool = False,
        user_id: str | None = None,
    ) -> Flow[AppToken]:
        """Mint an app token (keys, the team proxy, or from ``token_url``).

        ``include_strokes_session_id`` opens a live strokes session with it (``expires`` at
        most 300 s); ``user_id`` tags the token (mpxpy sends it; not in the public docs).
        """
        if isinstance(expires, bool) or not isinstance(expires, int) or expires < 1:
            raise ConfigurationError(f"app_token(): expires must be whole seconds, got {expires!r}")
        if include_strokes_session_id and expires > 300:
            raise ConfigurationError(
                f"app_token(): a token with a strokes session lives at most 300 s, got "
                f"expires={expires}."
            )
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise ConfigurationError("app_token(): user_id must be a non-empty string")
        payload: dict[str, Any] = {"expires": int(expires)}
        if include_strokes_session_id:
            payload["include_strokes_session_id"] = True
        if user_id is not None:
            payload["user_id"] = user_id
        creds = self.credentials
        if not self.settings.has_keys and creds.kind == "url":
            issued = self.clock.time()
            if len(payload) == 1:  # a plain token: the client's own (cached) kind
                response = yield from self.send(
                    lambda: creds.mint_request(self.timeout, USER_AGENT)
                )
                return creds.accept(response, issued_at=issued)
            s = self.settings
            response = yield from self.send(
                lambda: httpx.Request(
                    "POST",
                    s.token_url or "",
                    headers={**s.auth_headers(s.token_auth), "user-agent": USER_AGENT},
                    json=payload,
                    extensions={"timeout": self.timeout},
                )
            )
            return creds.accept(response, issued_at=issued, store=False)
        headers = creds.key_headers("app_token()")
        issued = self.clock.time()
        body = yield from self.call(
            lambda h: self._request("POST", "v3/app-tokens", {**headers, **h}, json=payload),
            needs_keys="app_token()",
            source="v3/app-tokens",
        )
        return AppToken.from_response(body, issued_at=issued)

    # -- PDF -------------------------------------------------------------------------------
    def pdf_options(
        self, options: Mapping[str, Any], extra: Mapping[str, Any] | None, *, what: str
    ) -> dict[str, Any]:
        """Checked v3/pdf options, ``extra_options`` merged in."""
        opts = check_options(
            PdfOptions,
            options,
            what=what,
            also=("outputs", "poll_interval", "timeout", "on_status", "extra_options"),
        )
        return merge_extra(opts, extra, what=what)

    def _pdf_builder(
        self, path_or_url: Any, outputs: Iterable[str], options: Mapping[str, Any]
    ) -> tuple[Builder, str]:
        opts = dict(options)
        if isinstance(outputs, str):
            outputs = [outputs]
        formats = dict(opts.pop("conversion_formats", None) or {})
        for ext in outputs:
            ext = "tex.zip" if ext == "tex" else ext
            if ext not in _PDF_NATIVE:
                formats[ext] = True
        if formats:
            opts["conversion_formats"] = formats
        if isinstance(path_or_url, str) and path_or_url.startswith(("http://", "https://")):
            source = describe_source(path_or_url)
            body = dict(opts, url=path_or_url)
            return (lambda h: self._request("POST", "v3/pdf", h, json=body)), source
        if isinstance(path_or_url, bytes | bytearray):
            data, name, source = bytes(path_or_url), "document.pdf", f"<{len(path_or_url)} bytes>"
        elif isinstance(path_or_url, str | os.PathLike) or hasattr(path_or_url, "read"):
            # regular files only, at most Mathpix's 1 GB, never blocking (FIFOs, devices)
            source = describe_source(path_or_url)
            data, filename = read_input(
                path_or_url,
                source,
                max_bytes=MAX_DOCUMENT_BYTES,
                what="document",
                knob="a smaller document (Mathpix accepts up to 1 GB)",
            )
            name = filename or "document.pdf"
        else:
            raise ImageError(
                f"Unsupported document input {describe_source(path_or_url)}: pass a path, bytes, "
                "a binary file object or an http(s) URL.",
                source=describe_source(path_or_url),
            )
        options_json = json.dumps(opts, separators=(",", ":"))
        content_type = (
            "application/pdf" if name.lower().endswith(".pdf") else ("application/octet-stream")
        )

        def build(headers: dict[str, str]) -> httpx.Request:
            return self._request(
                "POST",
                "v3/pdf",
                headers,
                files={"file": (name, data, content_type)},
                data={"options_json": options_json},
            )

        return build, source

    def pdf_submit(
        self,
        path_or_url: Any,
        *,
        outputs: Iterable[str] = ("mmd",),
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[str]:
        self.check_keys("PDF conversion")
        opts = self.pdf_options(options or {}, extra_options, what="pdf_submit()")
        build, source = self._pdf_builder(path_or_url, outputs, opts)
        body = yield from self.call(build, needs_keys="PDF conversion", source=source)
        pdf_id = body.get("pdf_id")
        if not pdf_id:
            raise PdfError(f"v3/pdf answered without pdf_id (input: {source})", body=body)
        return str(pdf_id)

    def pdf_status(self, pdf_id: str) -> Flow[dict[str, Any]]:
        self.check_keys("PDF status")
        response, _ = yield from self.call_raw(
            lambda h: self._request("GET", f"v3/pdf/{pdf_id}", h), needs_keys="PDF status"
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        # a status answer (even status "error") is returned; anything else is an error
        if response.status_code == 200 and isinstance(body, dict) and "status" in body:
            return body
        self._raise_for(
            response, body if body is not None else response.content, f"PDF {pdf_id}", False
        )
        raise AssertionError("unreachable")  # pragma: no cover

    def _download_once(self, pdf_id: str, ext: str) -> Flow[httpx.Response]:
        response, _ = yield from self.call_raw(
            lambda h: self._request("GET", f"v3/pdf/{pdf_id}.{ext}", h),
            needs_keys="PDF download",
        )
        return response

    def _download_result(self, response: httpx.Response, pdf_id: str, ext: str) -> bytes:
        if response.status_code == 200:
            if "json" in response.headers.get("content-type", "") and not ext.endswith("json"):
                self.parse_json(response, source=f"PDF {pdf_id}.{ext}")
            if ext.endswith("json"):
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if isinstance(body, dict) and "error_info" in body:
                    self._raise_for(response, body, f"PDF {pdf_id}.{ext}", False)
            return response.content
        if response.status_code in (202, 404):
            raise PdfError(
                f"Output .{ext} of PDF {pdf_id} is not ready yet (HTTP {response.status_code}). "
                "Fix: wait until pdf_status() says completed (pdf() does this for you).",
                status_code=response.status_code,
                error_id="not_ready",
            )
        self._raise_for(response, response.content, f"PDF {pdf_id}.{ext}", False)
        raise AssertionError("unreachable")  # pragma: no cover

    def pdf_download(self, pdf_id: str, ext: str = "mmd") -> Flow[bytes]:
        self.check_keys("PDF download")
        response = yield from self._download_once(pdf_id, ext)
        return self._download_result(response, pdf_id, ext)

    def pdf(
        self,
        path_or_url: Any,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[PdfResult]:
        """Submit, then :meth:`pdf_wait`: poll the status until completed, download ``outputs``."""
        outputs = _pdf_outputs(outputs) or ["mmd"]
        _check_wait("pdf()", poll_interval, timeout, on_status)
        self.check_keys("PDF conversion")
        opts = self.pdf_options(options or {}, extra_options, what="pdf()")
        pdf_id = yield from self.pdf_submit(path_or_url, outputs=outputs, options=opts)
        return (
            yield from self.pdf_wait(
                pdf_id,
                outputs=outputs,
                poll_interval=poll_interval,
                timeout=timeout,
                on_status=on_status,
                source=describe_source(path_or_url),
            )
        )

    def pdf_wait(
        self,
        pdf_id: str,
        *,
        outputs: Iterable[str] = ("mmd",),
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_status: PdfStatusHook | None = None,
        source: str | None = None,
    ) -> Flow[PdfResult]:
        """Poll a submitted PDF until completed, then download each of ``outputs`` (none: only
        wait). ``on_status`` gets every status answer (``status``, ``num_pages_completed``,
        ``num_pages``, ...) as it comes: the one polling loop, so surfaces draw progress
        from it instead of polling themselves. Waits and the deadline use the client's clock;
        ``poll_interval=None`` starts at 0.5 s and backs off to 5 s."""
        outputs = _pdf_outputs(outputs)
        _check_wait("pdf_wait()", poll_interval, timeout, on_status)
        if not isinstance(pdf_id, str) or not pdf_id:
            raise ConfigurationError(f"pdf_wait(): pdf_id must be a non-empty str, got {pdf_id!r}")
        self.check_keys("PDF status")
        clock = self.clock
        limit = 600.0 if timeout is None else float(timeout)
        deadline = clock.monotonic() + limit
        interval = 0.5 if poll_interval is None else float(poll_interval)
        what = f"PDF {pdf_id} ({source})" if source else f"PDF {pdf_id}"

        def wait(hint: float | None = None) -> Flow[None]:
            nonlocal interval
            if clock.monotonic() >= deadline:
                raise PollTimeoutError(
                    f"{what} was not ready within {limit:g} s. Fix: pass a longer timeout=, "
                    f"or pick it up later with pdf_wait('{pdf_id}') (or pdf_status('{pdf_id}') "
                    f"/ pdf_download('{pdf_id}', 'mmd'))."
                )
            pause = hint if hint is not None else interval
            pause = max(0.0, min(pause, deadline - clock.monotonic()))
            self.emit(Event("wait", delay=pause, reason="poll"))
            yield Sleep(pause, "poll")
            if poll_interval is None:
                interval = min(5.0, interval * 1.5)  # start fast, back off for long documents

        def poll() -> Flow[dict[str, Any]]:
            status = yield from self.pdf_status(pdf_id)
            if on_status is not None:
                on_status(status)  # may raise: that ends the wait
            return status

        status = yield from poll()
        while status.get("status") != "completed":
            if status.get("status") == "error" or "error" in status:
                raise self._pdf_error(pdf_id, status)
            yield from wait()
            status = yield from poll()

        results: dict[str, bytes] = {}
        for ext in outputs:
            while True:
                conv = (status.get("conversion_status") or {}).get(ext)
                conv = conv if isinstance(conv, dict) else {}
                conv_state = conv.get("status")
                if conv_state == "error":
                    raise self._pdf_error(pdf_id, conv, ext=ext)
                if conv_state not in (None, "completed"):
                    yield from wait()
                    status = yield from poll()
                    continue
                response = yield from self._download_once(pdf_id, ext)
                if response.status_code in (202, 404):
                    yield from wait(parse_retry_after(response.headers.get("retry-after")))
                    status = yield from poll()
                    continue
                results[ext] = self._download_result(response, pdf_id, ext)
                break
        return PdfResult(
            pdf_id=pdf_id,
            status="completed",
            outputs=results,
            raw=status,
            source=source or pdf_id,
        )

    def _pdf_error(self, pdf_id: str, body: Mapping[str, Any], ext: str | None = None) -> PdfError:
        found = body.get("error_info")
        info: dict[str, Any] = found if isinstance(found, dict) else {}
        error_id = str(info.get("id") or ("conversion_error" if ext else "pdf_error"))
        text = str(info.get("message") or body.get("error") or "processing failed")
        what = f"conversion to .{ext} of PDF {pdf_id}" if ext else f"PDF {pdf_id}"
        return PdfError(
            redact(
                f"{error_id}: {what} failed: {text}. Fix: check the document (encrypted, "
                "corrupt or too many pages?) and the requested outputs.",
                self.secrets,
            ),
            error_id=error_id,
            detail=info,
            body=dict(body),
        )


def _pdf_outputs(outputs: Iterable[str]) -> list[str]:
    """The outputs to download, ``"tex"`` said as ``"tex.zip"``; a lone str is one output."""
    if isinstance(outputs, str):
        outputs = [outputs]
    return ["tex.zip" if ext == "tex" else ext for ext in outputs]


def _check_wait(
    what: str, poll_interval: float | None, timeout: float | None, on_status: object
) -> None:
    """Refuse bad wait arguments before anything is sent."""
    for name, value in (("poll_interval", poll_interval), ("timeout", timeout)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
        ):
            raise ConfigurationError(f"{what}: {name} must be seconds > 0, got {value!r}")
    if on_status is not None and not callable(on_status):
        raise ConfigurationError(
            f"{what}: on_status must be a function taking the status dict, got {on_status!r}"
        )
