"""The exceptions raised by mathpix_nb.

Everything derives from ``MathpixError``; API answers are mapped by ``error_info.id``
(the stable key, the human text changes between deployments) and by HTTP status::

    MathpixError                       never contains app_key or tokens in its message
     ├── ConfigurationError (also ValueError)  missing credentials, unknown region, bad option
     ├── ImageError (also ValueError)  input image missing / unreadable / unsupported; .source
     ├── NotAllowedError               refused before sending (e.g. PDF or async with an app token)
     ├── TransportError                connection refused/dropped, timeouts (after retries)
     │    ├── RequestTimeout           the HTTP timeout expired
     │    └── SubmissionUncertain      the connection broke after an async job was sent: it
     │                                 may have been accepted (and billed); look it up by tag
     ├── PollTimeoutError              a deadline for async results / PDF processing passed
     └── APIError                      the API answered with an error (HTTP-200 error bodies too)
          ├── AuthenticationError      401 http_unauthorized, account_disabled, expired_license
          │    └── TokenError          app token invalid/expired (401, or 200 + its error id)
          ├── RateLimitError           429 per-minute limit (.retry_after)
          │    └── QuotaExceededError  429 monthly quota (limit_name *_monthly_limit): never retried
          ├── ServerError              5xx or sys_exception
          ├── InvalidRequestError      opts_*, json_syntax, sys_request_too_large, image_missing ...
          │    ├── NotFoundError       Files API not_found / data_source_not_found (404)
          │    └── ConflictError       Files API conflict (409): busy, or registered twice
          ├── OcrError                 image_no_content, image_decode_error, math_confidence ...
          └── PdfError                 pdf_* ids and PDF status "error"

``error_for(status_code, body, request_id=None)`` builds the right ``APIError`` subclass;
``error_info(body)`` reads Mathpix's error envelope (the one reader of it); ``exc.fatal`` says
whether the same failure would hit every other request of a run (credentials, quota,
permissions), so bulk work stops instead of failing row after row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "ErrorInfo",
    "ImageError",
    "InvalidRequestError",
    "MathpixError",
    "NotAllowedError",
    "NotFoundError",
    "OcrError",
    "PdfError",
    "PollTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "SubmissionUncertain",
    "TokenError",
    "TransportError",
    "error_for",
    "error_info",
    "is_fatal",
]

# Anything that looks like an app token is masked wherever a message is built.
_TOKEN_RE = re.compile(r"token_[A-Za-z0-9]{12,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove known secrets and anything shaped like an app token from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_RE.sub("token_***", text)


class MathpixError(Exception):
    """Base class of every error raised by mathpix_nb.

    ``fatal`` is True for failures that every other request with the same client would hit
    too (bad credentials, a used-up quota, a forbidden operation, a broken configuration):
    bulk runs and loaders stop on them instead of failing each row the same way.
    """

    fatal: bool = False

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(MathpixError, ValueError):
    """Missing credentials, unknown region or an impossible option combination.

    ``no_credentials`` is True only when no credential of any kind was given (not for a
    malformed or incomplete one): the notebook falls back to the offline engine only then.
    """

    fatal = True
    no_credentials: bool = False


class ImageError(MathpixError, ValueError):
    """The input image is missing, unreadable or unsupported; ``.source`` names it."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class NotAllowedError(MathpixError):
    """Refused before sending: these credentials cannot do this (e.g. PDF with an app token)."""

    fatal = True


class TransportError(MathpixError):
    """The request could not be completed: connection refused or dropped (after retries)."""


class RequestTimeout(TransportError, TimeoutError):
    """The HTTP timeout expired (after retries)."""


class SubmissionUncertain(TransportError):
    """The connection broke after an async job (``submit()``) was sent, so Mathpix may have
    accepted and billed it; it was not resent. ``tags`` are the tags it was sent with: look
    for it with ``ocr_results(tags=...)`` and send it again only if it is not there."""

    def __init__(self, message: str, *, tags: tuple[str, ...] = (), source: str | None = None):
        super().__init__(message)
        self.tags = tags
        self.source = source


class PollTimeoutError(MathpixError, TimeoutError):
    """A deadline for async results or PDF processing passed."""


class APIError(MathpixError):
    """The API answered with an error, whatever the HTTP status (many errors come with 200).

    Attributes: ``status_code``, ``error_id`` (``error_info.id``), ``message``, ``request_id``,
    ``detail`` (the whole ``error_info`` dict, e.g. ``limit_name``), ``source`` (the input).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_id: str | None = None,
        request_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        source: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.body = body
        self.status_code = status_code
        self.error_id = error_id
        self.request_id = request_id
        self.detail: dict[str, Any] = dict(detail or {})
        self.source = source

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(error_id={self.error_id!r}, status_code={self.status_code!r}, "
            f"request_id={self.request_id!r}, message={self.message!r})"
        )


class AuthenticationError(APIError):
    """401: credentials rejected (http_unauthorized, account_disabled, expired_license)."""

    fatal = True


class TokenError(AuthenticationError):
    """The app token is invalid or expired (401, or 200 ``unauthorized_token_request``)."""


class RateLimitError(APIError):
    """429 per-minute rate limit; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceededError(RateLimitError):
    """429 monthly quota (``limit_name`` ends in ``_monthly_limit``); retrying does not help."""

    fatal = True


class ServerError(APIError):
    """5xx or ``sys_exception``: a problem on the server side (retried before raising)."""


class InvalidRequestError(APIError):
    """The request itself is wrong: ``opts_*``, ``json_syntax``, ``sys_request_too_large``..."""


class NotFoundError(InvalidRequestError):
    """Files API 404 ``not_found`` / ``data_source_not_found``: the id is unknown here."""


class ConflictError(InvalidRequestError):
    """Files API 409 ``conflict``: e.g. deleting a file still processing, a bucket or name
    registered twice, or a finalized job."""


class OcrError(APIError):
    """This image could not be read: ``image_no_content``, ``image_decode_error``, ..."""


class PdfError(APIError):
    """A PDF failed: ``pdf_*`` ids, conversion errors and PDF status ``error``."""


# error id -> (class, how to fix it)
_BY_ID: dict[str, tuple[type[APIError], str]] = {
    "http_unauthorized": (
        AuthenticationError,
        "check app_id/app_key (env MATHPIX_APP_ID / MATHPIX_APP_KEY) at console.mathpix.com",
    ),
    "account_disabled": (AuthenticationError, "the account is disabled; contact Mathpix support"),
    "expired_license": (AuthenticationError, "the on-premises license expired; renew it"),
    "unauthorized_token_request": (
        TokenError,
        "the app token is invalid or expired; get a fresh one (async, PDF and ocr-results "
        "need app_id/app_key)",
    ),
    "token_unknown": (TokenError, "the app token does not exist (deleted or never issued)"),
    "http_max_requests": (
        RateLimitError,
        "too many requests per minute; lower the concurrency or let the client retry longer "
        "(max_retries)",
    ),
    "sys_exception": (ServerError, "a Mathpix server error; retry later"),
    "connection_closed": (ServerError, "the connection closed early; retry"),
    "sys_request_too_large": (
        InvalidRequestError,
        "the request is too large (5 MB per request, 2 MB base64); crop or downscale the image "
        "(prepare=True does this)",
    ),
    "json_syntax": (InvalidRequestError, "the request JSON is malformed"),
    "image_missing": (InvalidRequestError, "no image was sent; pass a path, bytes or URL"),
    "image_download_error": (
        OcrError,
        "Mathpix could not download the URL (10 MB / 15 s limit, must be public); pass the "
        "file instead",
    ),
    "image_decode_error": (OcrError, "the image bytes could not be decoded; check the file"),
    "image_no_content": (
        OcrError,
        "nothing readable was found; check the crop and that the image contains text or math",
    ),
    "image_not_supported": (OcrError, "the image is not math or text"),
    "image_max_size": (OcrError, "the image is too large to process; crop or downscale it"),
    "math_confidence": (
        OcrError,
        "the result is below confidence_threshold; lower it or improve the image",
    ),
    "math_syntax": (OcrError, "the math could not be recognised"),
    "strokes_missing": (InvalidRequestError, "no strokes were sent"),
    "strokes_syntax_error": (InvalidRequestError, "the strokes are malformed"),
    "strokes_no_content": (OcrError, "the strokes contain nothing readable"),
    "opts_bad_callback": (InvalidRequestError, "fix the callback option"),
    "opts_unknown_ocr": (InvalidRequestError, "the ocr option must be ['math'] or ['math','text']"),
    "opts_unknown_format": (InvalidRequestError, "remove the unknown value from formats"),
    "opts_number_required": (InvalidRequestError, "pass a number for this option"),
    "opts_value_out_of_range": (InvalidRequestError, "pass a value within the allowed range"),
    "opts_conflict": (InvalidRequestError, "remove one of the conflicting options"),
    "batch_unknown_id": (InvalidRequestError, "the batch id is unknown"),
    "cnv_unknown_id": (PdfError, "the conversion is not known (yet)"),
    "pdf_encrypted": (PdfError, "the PDF is encrypted; remove the password first"),
    "pdf_unknown_id": (PdfError, "the PDF id expired or does not exist"),
    "pdf_missing": (PdfError, "no PDF was sent; pass a path or URL"),
    "pdf_page_limit_exceeded": (PdfError, "too many pages; split the PDF or use page_ranges"),
    "conversion_error": (PdfError, "a requested conversion failed"),
    "file_missing": (InvalidRequestError, "no file was sent"),
    # the Files API (/files/v1): real HTTP statuses, the id in "error"
    "unauthorized": (
        AuthenticationError,
        "check app_key (env MATHPIX_APP_KEY); the Files API needs the API key",
    ),
    "forbidden": (AuthenticationError, "the id belongs to another group"),
    "not_found": (
        NotFoundError,
        "the file, job or data source id is unknown in this region (or was deleted)",
    ),
    "data_source_not_found": (
        NotFoundError,
        "register the bucket first with data_source_register(...) (same region)",
    ),
    "conflict": (ConflictError, "see the message: the resource is busy or already exists"),
    "bad_request": (InvalidRequestError, "fix the field the message names"),
    "payload_too_large": (InvalidRequestError, "the request or upload is too large"),
    "unsupported_format": (
        InvalidRequestError,
        "that format was not requested at submission; submit again with it in outputs=",
    ),
    "format_not_ready": (
        PdfError,
        "the format is still converting; wait with files_wait() or poll files_status()",
    ),
    "unavailable": (ServerError, "a Mathpix service is briefly unavailable; retry"),
    "quota_exceeded": (QuotaExceededError, "the account quota is used up"),
}


@dataclass(frozen=True)
class ErrorInfo:
    """Mathpix's error envelope, read once: ``{"error": text, "error_info": {"id", "message",
    ...detail}}`` (v3) or ``{"error": "<id>"}`` (Files API style)."""

    id: str | None
    message: str
    detail: dict[str, Any]


def error_info(body: Any) -> ErrorInfo | None:
    """The error carried by a response body (dict, JSON text or bytes), or None if none.

    >>> error_info({"error": "Content not found", "error_info": {"id": "image_no_content"}}).id
    'image_no_content'
    >>> error_info({"text": "x"}) is None
    True
    """
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, Mapping):
        return None
    raw = body.get("error_info")
    err = body.get("error")
    if not isinstance(raw, Mapping) and not err:
        return None
    info = dict(raw) if isinstance(raw, Mapping) else {}
    nested = info.get("detail")
    if isinstance(nested, Mapping):  # the older docs nest detail fields one level down
        info = {**nested, **info}
    ident = info.get("id")
    if not ident and isinstance(err, str) and re.fullmatch(r"[a-z][a-z0-9_]*", err):
        ident = err  # Files API style: "error" holds the machine id
    text = str(info.get("message") or info.get("error") or err or "").strip()
    return ErrorInfo(id=str(ident) if ident else None, message=text, detail=info)


def is_fatal(exc: BaseException) -> bool:
    """True if ``exc`` would fail every other request of the run the same way."""
    return bool(getattr(exc, "fatal", False))


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    from ._retry import parse_retry_after

    if not headers:
        return None
    return parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))


def error_for(
    status_code: int | None,
    body: Any,
    request_id: str | None = None,
    *,
    source: str | None = None,
    headers: Mapping[str, str] | None = None,
    token_auth: bool = False,
    secrets: tuple[str, ...] = (),
) -> APIError:
    """Map an error answer (a JSON body dict, text or bytes) to the right ``APIError``.

    ``source`` names the input in the message; ``token_auth`` marks requests sent with an
    app token, so that a plain 401 becomes a ``TokenError``; ``secrets`` are masked.
    """
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            body = {"error": body.strip()[:200]}
    if not isinstance(body, Mapping):
        body = {}
    found = error_info(body)
    info = found.detail if found else {}
    error_id = found.id if found else None
    text = found.message if found else ""
    request_id = request_id or body.get("request_id")

    cls: type[APIError]
    fix = ""
    if error_id in _BY_ID:
        cls, fix = _BY_ID[error_id]
    elif status_code in (401, 403):
        cls, fix = AuthenticationError, _BY_ID["http_unauthorized"][1]
    elif status_code == 429:
        cls, fix = RateLimitError, _BY_ID["http_max_requests"][1]
    elif (status_code is not None and status_code >= 500) or (error_id or "").startswith("sys_"):
        cls, fix = ServerError, "a Mathpix server error; retry later"
    elif (error_id or "").startswith("opts_"):
        cls, fix = InvalidRequestError, "fix the named option"
    elif (error_id or "").startswith(("image_", "math_")):
        cls = OcrError
    elif (error_id or "").startswith(("pdf_", "cnv_")):
        cls = PdfError
    elif status_code == 404:
        cls, fix = (
            InvalidRequestError,
            (
                "the endpoint or id was not found; check base_url (the host only, e.g. "
                "https://api.mathpix.com, without /v3) and the id"
            ),
        )
    elif status_code is not None and 400 <= status_code < 500:
        cls = InvalidRequestError
    else:
        cls = APIError

    if (
        status_code == 401
        and token_auth
        and cls is AuthenticationError
        and error_id
        in (
            None,
            "http_unauthorized",
        )
    ):
        cls, fix = TokenError, _BY_ID["unauthorized_token_request"][1]

    extra: dict[str, Any] = {}
    limit_name = str(info.get("limit_name") or "")
    if issubclass(cls, RateLimitError):
        if limit_name.endswith("_monthly_limit"):
            cls = QuotaExceededError
            fix = (
                f"the monthly quota {limit_name} is used up; retrying will not help - raise the "
                "limit at console.mathpix.com or wait for the next month"
            )
        elif limit_name:
            fix = f"{limit_name} exceeded; " + fix
        extra["retry_after"] = _retry_after(headers)

    parts = [error_id or f"HTTP {status_code}"]
    if text:
        parts.append(f": {text}")
    if source:
        parts.append(f" (input: {source})")
    if fix:
        parts.append(f". Fix: {fix}")
    if request_id:
        parts.append(f" [request_id {request_id}]")
    return cls(
        redact("".join(parts), secrets),
        status_code=status_code,
        error_id=error_id,
        request_id=request_id,
        detail=info,
        source=source,
        body=body,
        **extra,
    )
