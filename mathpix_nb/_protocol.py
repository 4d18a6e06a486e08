"""The I/O-free core shared by ``Mathpix`` and ``AsyncMathpix``.

Every operation is a generator *flow* that yields steps and receives their outcomes:

* an ``httpx.Request``: the driver sends it and sends back the ``httpx.Response`` (or throws
  the ``httpx.TransportError`` into the flow);
* a ``Sleep``: the driver waits (``time.sleep`` or ``anyio.sleep``) and sends back ``None``.

The flow's return value is the result. Retries, token refresh and PDF polling are written
once here; the two clients only drive flows (see ``_client.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, Union

import httpx

from ._auth import Credentials
from ._config import Settings
from ._exceptions import (
    APIError,
    ConfigurationError,
    ImageError,
    PdfError,
    PollTimeoutError,
    RequestTimeout,
    TokenError,
    TransportError,
    error_for,
    redact,
)
from ._image_io import MAX_DOCUMENT_BYTES, read_input
from ._image_pixels import crop_region
from ._images import ImagePrep, PreparedImage, describe_source, is_remote, prepare_image, raw_image
from ._models import AppToken, LatexResult, OcrResult, PdfResult
from ._retry import RetryPolicy, parse_retry_after
from ._version import __version__

__all__ = ["ClientCore", "Compute", "Flow", "Sleep"]

T = TypeVar("T")

# Failures after the request went out: the server may have received and acted on it.
# (Connect errors, pool timeouts and write errors mean it did not get a whole request.)
_MAYBE_ACCEPTED: tuple[type[Exception], ...] = (
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class Sleep:
    """A step asking the driver to wait ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Compute:
    """A step asking the driver to run CPU work (image preparation) and send back its result.

    The async driver runs it in a worker thread so the event loop stays responsive.
    """

    func: Callable[[], Any]


Step = Union[httpx.Request, Sleep, Compute]  # noqa: UP007 - runtime alias
Flow = Generator[Step, Any, T]
Builder = Callable[[dict[str, str]], httpx.Request]

USER_AGENT = f"mathpix_nb/{__version__}"
# Retries are logged at DEBUG (method, path, cause, wait); never headers, bodies or secrets.
_log = logging.getLogger("mathpix_nb")
# Output extensions that always exist after a PDF completes (not conversion formats).
_PDF_NATIVE = {"mmd", "lines.json", "lines.mmd.json"}


def _prep_option(prepare: bool | ImagePrep | None) -> ImagePrep | None:
    if prepare is None or prepare is True:
        return ImagePrep()
    if prepare is False:
        return None
    if isinstance(prepare, ImagePrep):
        return prepare
    raise ConfigurationError(f"prepare must be True, False or an ImagePrep, got {prepare!r}")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return [_query_value(v) for v in value]
    return value


class ClientCore:
    """Settings, credentials, retry policy and every request/response rule, without I/O."""

    def __init__(self, settings: Settings, *, prepare: bool | ImagePrep = True) -> None:
        self.settings = settings
        self.credentials = Credentials(settings)
        self.retry = RetryPolicy(max_retries=settings.max_retries)
        self.prep = _prep_option(prepare)
        self.timeout = settings.timeout.as_dict()

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

    def _maybe_accepted_error(self, exc: Exception, request: httpx.Request) -> TransportError:
        host = f"{request.url.scheme}://{request.url.netloc.decode()}"
        return TransportError(
            f"{type(exc).__name__}: the connection to {host}{request.url.path} broke after the "
            "request was sent, so Mathpix may have accepted (and billed) it; it was not resent. "
            "Fix: look for it with ocr_results(tags=[...]) using the tags you submitted with, "
            "and submit again only if it is not there."
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
        self, build: Callable[[], httpx.Request], *, resend_after_upload: bool = True
    ) -> Flow[httpx.Response]:
        """Send with retries: per-minute 429, 5xx, sys_exception, timeouts, dropped connections.

        ``resend_after_upload=False`` is for requests that start billed work the caller can
        find again (async submissions): a connection that broke after the request went out
        may have been accepted, so it is not resent blindly.
        """
        attempt = 0
        while True:
            request = build()
            response: httpx.Response | None = None
            failure: Exception | None = None
            try:
                response = yield request
            except httpx.TransportError as exc:
                failure = exc
                if not resend_after_upload and isinstance(exc, _MAYBE_ACCEPTED):
                    raise self._maybe_accepted_error(exc, request) from exc
                delay = self.retry.delay_after_exception(exc, attempt)
                if delay is None:
                    raise self._transport_error(exc, request, attempt + 1) from exc
            else:
                delay = self.retry.delay_after_response(response, attempt)
                if delay is None:
                    return response
            attempt += 1
            what = (
                f"HTTP {response.status_code}"
                if isinstance(response, httpx.Response)
                else type(failure).__name__
            )
            _log.debug(
                "retry %d/%d of %s %s after %s in %.2f s",
                attempt,
                self.retry.max_retries,
                request.method,
                request.url.path,
                what,
                delay,
            )
            yield Sleep(delay)

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
                yield Sleep(0.02)
                waited += 0.02
                continue
            creds.minting = True
            try:
                issued = time.time()
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
    ) -> Flow[dict[str, Any]]:
        """Authenticate, send (with retries), refresh an expired token once, parse the JSON.

        ``needs_keys`` names an operation app tokens cannot do; it is then sent with
        app_id/app_key, or refused with NotAllowedError before anything is sent.
        """
        response, token = yield from self._call_raw(
            build, needs_keys=needs_keys, resend_after_upload=resend_after_upload
        )
        return self.parse_json(response, source=source, token_auth=token is not None)

    def _call_raw(
        self, build: Builder, *, needs_keys: str | None = None, resend_after_upload: bool = True
    ) -> Flow[tuple[httpx.Response, AppToken | None]]:
        creds = self.credentials
        resend = resend_after_upload
        if needs_keys is not None or creds.mode == "keys":
            headers = creds.key_headers(needs_keys or "This request")
            response = yield from self.send(lambda: build(headers), resend_after_upload=resend)
            return response, None
        token = yield from self.ensure_token()
        response = yield from self.send(lambda: build(token.headers), resend_after_upload=resend)
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
    def image_builder(
        self,
        path: str,
        image: Any,
        options: Mapping[str, Any],
        *,
        crop: tuple[float, float, float, float] | None,
        prepare: bool | ImagePrep | None,
    ) -> Flow[tuple[Builder, str]]:
        """A request builder for one image on ``path`` (v3/text, v3/latex) and its source name."""
        opts = {k: v for k, v in options.items() if v is not None}
        if "src" in opts:
            raise ConfigurationError("Pass the image as the first argument, not as src=.")
        if is_remote(image):
            source = describe_source(image)
            body = dict(opts, src=image.strip())
            if crop is not None:
                # remote pixels are not ours to crop: let the API do it (raw, not EXIF, pixels)
                body["region"] = crop_region(crop, source)
            return (lambda headers: self._request("POST", path, headers, json=body)), source

        prep = self.prep if prepare is None else _prep_option(prepare)
        prepared: PreparedImage
        if isinstance(image, PreparedImage):
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

    def text(
        self, image: Any, *, crop: Any = None, prepare: Any = None, **options: Any
    ) -> Flow[OcrResult]:
        if options.get("async"):
            raise ConfigurationError("Use submit() for async requests; text() waits.")
        build, source = yield from self.image_builder(
            "v3/text", image, options, crop=crop, prepare=prepare
        )
        body = yield from self.call(build, source=source)
        return OcrResult(raw=body, source=source)

    def latex(
        self, image: Any, *, crop: Any = None, prepare: Any = None, **options: Any
    ) -> Flow[LatexResult]:
        build, source = yield from self.image_builder(
            "v3/latex", image, options, crop=crop, prepare=prepare
        )
        body = yield from self.call(build, source=source)
        return LatexResult(raw=body, source=source)

    def submit(
        self,
        image: Any,
        *,
        tags: Iterable[str] | str | None = None,
        crop: Any = None,
        prepare: Any = None,
        **options: Any,
    ) -> Flow[str]:
        self.credentials.key_headers("submit() (async v3/text)")  # refuse before preparing
        if tags is not None:
            options["tags"] = [tags] if isinstance(tags, str) else list(tags)
        options["async"] = True
        build, source = yield from self.image_builder(
            "v3/text", image, options, crop=crop, prepare=prepare
        )
        body = yield from self.call(
            build,
            needs_keys="submit() (async v3/text)",
            source=source,
            resend_after_upload=False,  # a blind resend could start (and bill) a second job
        )
        request_id = body.get("request_id")
        if not request_id:
            raise APIError(f"v3/text async answered without request_id (input: {source})")
        return str(request_id)

    # -- results ---------------------------------------------------------------------------
    def ocr_results_page(
        self, filters: Mapping[str, Any], page: int, per_page: int
    ) -> Flow[list[dict[str, Any]]]:
        params: dict[str, Any] = {k: _query_value(v) for k, v in filters.items() if v is not None}
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
    def app_token(self, expires: int = 300) -> Flow[AppToken]:
        creds = self.credentials
        if not self.settings.has_keys and creds.kind == "url":
            issued = time.time()
            response = yield from self.send(lambda: creds.mint_request(self.timeout, USER_AGENT))
            return creds.accept(response, issued_at=issued)
        headers = creds.key_headers("app_token()")
        issued = time.time()
        body = yield from self.call(
            lambda h: self._request(
                "POST", "v3/app-tokens", {**headers, **h}, json={"expires": int(expires)}
            ),
            needs_keys="app_token()",
            source="v3/app-tokens",
        )
        return AppToken.from_response(body, issued_at=issued)

    # -- PDF -------------------------------------------------------------------------------
    def _pdf_builder(
        self, path_or_url: Any, outputs: Iterable[str], options: Mapping[str, Any]
    ) -> tuple[Builder, str]:
        opts = {k: v for k, v in options.items() if v is not None}
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
        self, path_or_url: Any, *, outputs: Iterable[str] = ("mmd",), **options: Any
    ) -> Flow[str]:
        self.check_keys("PDF conversion")
        build, source = self._pdf_builder(path_or_url, outputs, options)
        body = yield from self.call(build, needs_keys="PDF conversion", source=source)
        pdf_id = body.get("pdf_id")
        if not pdf_id:
            raise PdfError(f"v3/pdf answered without pdf_id (input: {source})", body=body)
        return str(pdf_id)

    def pdf_status(self, pdf_id: str) -> Flow[dict[str, Any]]:
        self.check_keys("PDF status")
        response, _ = yield from self._call_raw(
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
        response, _ = yield from self._call_raw(
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
        **options: Any,
    ) -> Flow[PdfResult]:
        """Submit, poll the status until completed, then download each requested output."""
        outputs = ["tex.zip" if ext == "tex" else ext for ext in outputs] or ["mmd"]
        self.check_keys("PDF conversion")
        pdf_id = yield from self.pdf_submit(path_or_url, outputs=outputs, **options)
        deadline = time.monotonic() + (600.0 if timeout is None else float(timeout))
        interval = 0.5 if poll_interval is None else float(poll_interval)

        def wait(hint: float | None = None) -> Flow[None]:
            nonlocal interval
            if time.monotonic() >= deadline:
                raise PollTimeoutError(
                    f"PDF {pdf_id} ({describe_source(path_or_url)}) was not ready within "
                    f"{timeout or 600.0:g} s. Fix: pass a longer timeout=, or fetch it later "
                    f"with pdf_status('{pdf_id}') / pdf_download('{pdf_id}', 'mmd')."
                )
            pause = hint if hint is not None else interval
            yield Sleep(max(0.0, min(pause, deadline - time.monotonic())))
            if poll_interval is None:
                interval = min(5.0, interval * 1.5)  # start fast, back off for long documents

        status = yield from self.pdf_status(pdf_id)
        while status.get("status") != "completed":
            if status.get("status") == "error" or "error" in status:
                raise self._pdf_error(pdf_id, status)
            yield from wait()
            status = yield from self.pdf_status(pdf_id)

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
                    status = yield from self.pdf_status(pdf_id)
                    continue
                response = yield from self._download_once(pdf_id, ext)
                if response.status_code in (202, 404):
                    yield from wait(parse_retry_after(response.headers.get("retry-after")))
                    status = yield from self.pdf_status(pdf_id)
                    continue
                results[ext] = self._download_result(response, pdf_id, ext)
                break
        return PdfResult(
            pdf_id=pdf_id,
            status="completed",
            outputs=results,
            raw=status,
            source=describe_source(path_or_url),
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
