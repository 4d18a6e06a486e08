"""The Files API (``/files/v1``) as I/O-free flows, in the style of ``ClientCore``.

Each method is a generator that yields ``httpx.Request`` (sent through ``ClientCore.send``,
so retries, ``Retry-After`` and dropped connections are handled once) and ``Sleep`` steps, and
returns a parsed result. ``Mathpix`` / ``AsyncMathpix`` drive them (``files_*`` methods).

Files-API errors are real HTTP statuses with the machine id in ``"error"``
(``{"error": "not_found"}``); they map to the ``_exceptions`` tree: ``NotFoundError``,
``ConflictError``, ``InvalidRequestError`` (``bad_request``, ``unsupported_format``),
``PdfError`` (``format_not_ready``, conversion errors), ``AuthenticationError``, ``ServerError``.

Submissions are made safe to resend: without a ``job_id`` the flow sends an
``Idempotency-Key`` (yours or a random one), with a ``job_id`` every item should carry a
``custom_id``; only then is a request whose connection broke after sending resent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ._exceptions import (
    APIError,
    ConfigurationError,
    ImageError,
    PdfError,
    PollTimeoutError,
    SubmissionUncertain,
    TransportError,
    error_for,
)
from ._image_io import MAX_DOCUMENT_BYTES, read_input
from ._images import describe_source
from ._protocol import _MAYBE_ACCEPTED, ClientCore, Flow, Sleep

__all__ = [
    "FILES_FORMATS",
    "FileEntry",
    "FileStatus",
    "FilesApi",
    "FilesJob",
    "JobSubmission",
    "verify_webhook",
]

#: formats ``outputs=`` may name (mmd, lines.json and lines.mmd.json always exist)
FILES_FORMATS = (
    "mmd",
    "md",
    "docx",
    "tex.zip",
    "html",
    "pdf",
    "latex.pdf",
    "pptx",
    "xlsx",
    "mmd.zip",
    "md.zip",
    "html.zip",
    "mmd.overlay.pdf",
    "lines.json",
    "lines.mmd.json",
)
_NATIVE = ("mmd", "lines.json", "lines.mmd.json")
_IDENT = re.compile(r"^[A-Za-z0-9_\-.:]{1,256}$")
_ERROR_ID = re.compile(r"^[a-z][a-z0-9_]*$")
ITEM_KEYS = (
    "source_uri",
    "custom_id",
    "filename",
    "destination_uri",
    "destination_basename",
    "s3_region",
    "page_ranges",
)
#: fields the explicit arguments own; ``options=`` may not set them
_OWNED = frozenset(
    {
        "source_uri",
        "files",
        "job_id",
        "custom_id",
        "filename",
        "conversion_formats",
        "destination_uri",
        "destination_basename",
        "s3_region",
        "image_output_mode",
        "metadata",
        "callback_url",
        "callback_headers",
        "callback_events",
    }
)


# --------------------------------------------------------------------------- results


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class FileStatus:
    """``GET /files/v1/{file_id}``: one document's state. ``raw`` keeps the whole answer."""

    file_id: str
    status: str  # pending | split | completed | error
    filename: str | None = None
    custom_id: str | None = None
    job_id: str | None = None
    num_pages: int = 0
    num_pages_completed: int = 0
    percent_done: float = 0.0
    formats: dict[str, str] = field(default_factory=dict)
    error_id: str | None = None
    error_message: str | None = None
    destination_uri: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FileStatus:
        info = body.get("error_info")
        info = info if isinstance(info, Mapping) else {}
        error = body.get("error")
        formats = body.get("formats")
        return cls(
            file_id=str(body.get("file_id") or ""),
            status=str(body.get("status") or ""),
            filename=body.get("filename"),
            custom_id=body.get("custom_id"),
            job_id=body.get("job_id"),
            num_pages=_int(body.get("num_pages")),
            num_pages_completed=_int(body.get("num_pages_completed")),
            percent_done=float(body.get("percent_done") or 0.0),
            formats={str(k): str(v) for k, v in formats.items()}
            if isinstance(formats, Mapping)
            else {},
            error_id=(str(info.get("id") or error) if (info or error) else None),
            error_message=str(info["message"]) if info.get("message") else None,
            destination_uri=body.get("destination_uri"),
            raw=dict(body),
        )

    @property
    def finished(self) -> bool:
        """Terminal (``completed`` or ``error``); formats may still be converting."""
        return self.status in ("completed", "error")

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def done(self) -> bool:
        """Nothing will change any more: failed, or completed with every format final."""
        if self.status == "error":
            return True
        final = ("completed", "error")
        return self.status == "completed" and all(s in final for s in self.formats.values())


@dataclass(frozen=True)
class FilesJob:
    """``GET /files/v1/jobs/{job_id}``: status and counters of a job."""

    job_id: str
    status: str  # processing | completed
    file_count: int
    files_completed: int
    files_errored: int
    created_at: str | None = None
    modified_at: str | None = None
    finalized_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FilesJob:
        return cls(
            job_id=str(body.get("job_id") or ""),
            status=str(body.get("status") or ""),
            file_count=_int(body.get("file_count")),
            files_completed=_int(body.get("files_completed")),
            files_errored=_int(body.get("files_errored")),
            created_at=body.get("created_at"),
            modified_at=body.get("modified_at"),
            finalized_at=body.get("finalized_at"),
            raw=dict(body),
        )

    @property
    def done(self) -> bool:
        return self.status == "completed"

    @property
    def files_pending(self) -> int:
        return max(0, self.file_count - self.files_completed - self.files_errored)


@dataclass(frozen=True)
class FileEntry:
    """One row of a job's file listing (``status`` is None unless the listing was filtered)."""

    file_id: str
    filename: str | None
    custom_id: str | None
    status: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FileEntry:
        return cls(
            file_id=str(body.get("file_id") or ""),
            filename=body.get("filename"),
            custom_id=body.get("custom_id"),
            status=body.get("status"),
        )


@dataclass(frozen=True)
class JobSubmission:
    """The answer of ``POST /files/v1/jobs``. ``rejected`` is filled only by deployments that
    refuse items synchronously (``[{"index", "source_uri", "custom_id", "reason"}]``); others
    report per-item failures later, as each file's ``error``."""

    job_id: str
    file_count: int
    rejected: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def verify_webhook(
    signature_header: str | None,
    body: bytes | str,
    secret: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Check a Files API webhook: ``Mathpix-Signature: t=<unix>,v1=<hex>`` where ``hex`` is
    the HMAC-SHA256 of ``"<t>." + raw body`` keyed by your signing secret
    (``files_webhook_secret()``). Pass the raw bytes, before any JSON parsing; any ``v1`` may
    match; a ``t`` further than ``tolerance`` seconds from ``now`` fails. Never raises."""
    if not signature_header or not secret:
        return False
    stamp: str | None = None
    candidates: list[str] = []
    for part in signature_header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            stamp = value.strip()
        elif name == "v1":
            candidates.append(value.strip())
    if stamp is None or not candidates:
        return False
    try:
        when = int(stamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - when) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --------------------------------------------------------------------------- input checks


def _ident(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ConfigurationError(
            f"{name} must be 1-256 characters from A-Z a-z 0-9 _ - . : (got {value!r:.60}). "
            "Fix: use e.g. a slug or a hash of your own id."
        )
    return value


def _formats(outputs: Iterable[str]) -> dict[str, bool]:
    if isinstance(outputs, str):
        outputs = (outputs,)
    chosen: dict[str, bool] = {}
    for ext in outputs:
        ext = "tex.zip" if ext == "tex" else ext
        if ext not in FILES_FORMATS:
            raise ConfigurationError(
                f"unknown output format {ext!r}. Fix: use some of {', '.join(FILES_FORMATS)}"
            )
        if ext not in _NATIVE:
            chosen[ext] = True
    return chosen


def _options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError("options must be a dict of v3/pdf OCR options")
    clash = sorted(set(options) & _OWNED)
    if clash:
        raise ConfigurationError(
            f"options may not set {', '.join(clash)}. Fix: pass them as the keyword arguments "
            "of the same name"
        )
    return {k: v for k, v in options.items() if v is not None}


def _item(value: str | Mapping[str, Any], index: int) -> dict[str, Any]:
    if isinstance(value, str):
        return {"source_uri": value}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"files[{index}] must be a source URI or a dict with source_uri, got "
            f"{type(value).__name__}"
        )
    unknown = sorted(set(value) - set(ITEM_KEYS))
    if unknown:
        raise ConfigurationError(
            f"files[{index}] has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(ITEM_KEYS)}"
        )
    item = {k: v for k, v in value.items() if v is not None}
    if not isinstance(item.get("source_uri"), str) or not item["source_uri"]:
        raise ConfigurationError(f"files[{index}] needs a source_uri (https://, s3://, gs://)")
    _ident(f"files[{index}].custom_id", item.get("custom_id"))
    return item


def _read_document(document: Any) -> tuple[bytes, str, str]:
    """(bytes, file name, description) of a path, bytes or binary file object."""
    if isinstance(document, bytes | bytearray | memoryview):
        data = bytes(document)
        return data, "document.pdf", f"<{len(data)} bytes>"
    if isinstance(document, str | os.PathLike) or hasattr(document, "read"):
        # regular files only, bounded (1 GB, as v3/pdf), never blocking on FIFOs or devices
        source = describe_source(document)
        data, name = read_input(
            document,
            source,
            max_bytes=MAX_DOCUMENT_BYTES,
            what="document",
            knob="a smaller document (v3/pdf accepts up to 1 GB)",
        )
        return data, name or "document.pdf", source
    raise ImageError(
        f"Unsupported document input of type {type(document).__name__}: pass a path, bytes or "
        "a binary file object (URLs and bucket URIs go to files_submit())."
    )


def _seg(value: str) -> str:
    return quote(str(value), safe="")


# --------------------------------------------------------------------------- the flows


class FilesApi:
    """The Files API flows over one ``ClientCore`` (its settings, keys and retry policy)."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    # -- plumbing --------------------------------------------------------------------------

    def _headers(self, what: str) -> dict[str, str]:
        return self.core.credentials.key_headers(what)  # the Files API needs the API key

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        safe_to_resend: bool = True,
        uncertain_fix: str = "",
        **kwargs: Any,
    ) -> Flow[httpx.Response]:
        headers = {**self._headers(what), **(extra_headers or {})}
        try:
            response = yield from self.core.send(
                lambda: self.core._request(method, path, headers, **kwargs),
                resend_after_upload=safe_to_resend,
            )
        except TransportError as exc:
            cause = exc.__cause__
            if safe_to_resend or not isinstance(cause, _MAYBE_ACCEPTED):
                raise
            raise SubmissionUncertain(
                f"{type(cause).__name__}: the connection broke after {what} was sent, so "
                f"Mathpix may have accepted it; it was not resent. Fix: {uncertain_fix}"
            ) from cause
        return response

    def error(self, response: httpx.Response, what: str) -> APIError:
        """The exception for a failed Files API answer (the id is in ``error``)."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.content
        if isinstance(body, dict):
            info = body.get("error_info")
            error = body.get("error")
            has_id = isinstance(info, dict) and bool(info.get("id"))
            if isinstance(error, str) and _ERROR_ID.match(error) and not has_id:
                message = body.get("message") or error
                body = {**body, "error_info": {"id": error, "message": message}}
        return error_for(
            response.status_code,
            body,
            source=what,
            headers=response.headers,
            secrets=self.core.secrets,
        )

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if not 200 <= response.status_code < 300:
            raise self.error(response, what)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self.error(response, what)
        return body

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Flow[dict[str, Any]]:
        response = yield from self._send(method, path, what, **kwargs)
        return self._json(response, what)

    # -- submissions -------------------------------------------------------------------------

    def _common(
        self,
        *,
        outputs: Iterable[str],
        options: Mapping[str, Any] | None,
        image_output_mode: str | None,
        metadata: Mapping[str, Any] | None,
        callback_url: str | None,
        callback_headers: Mapping[str, str] | None,
        callback_events: Iterable[str] | None,
    ) -> dict[str, Any]:
        body = _options(options)
        formats = _formats(outputs)
        if formats:
            body["conversion_formats"] = formats
        if image_output_mode is not None:
            body["image_output_mode"] = image_output_mode
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if callback_url is None and (callback_headers is not None or callback_events is not None):
            raise ConfigurationError("callback_headers and callback_events need a callback_url")
        if callback_url is not None:
            body["callback_url"] = callback_url
        if callback_headers is not None:
            body["callback_headers"] = dict(callback_headers)
        if callback_events is not None:
            body["callback_events"] = list(callback_events)
        return body

    def submit(
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
    ) -> Flow[str]:
        """``POST /files/v1/uri``: one document by URL or bucket URI; returns its file_id."""
        if not isinstance(source_uri, str) or not source_uri.strip():
            raise ConfigurationError("source_uri must be an https:// URL or an s3:// / gs:// URI")
        body = self._common(
            outputs=outputs,
            options=options,
            image_output_mode=image_output_mode,
            metadata=metadata,
            callback_url=callback_url,
            callback_headers=callback_headers,
            callback_events=callback_events,
        )
        fields = self._single_fields(
            job_id, custom_id, filename, destination_uri, destination_basename, s3_region
        )
        body.update(fields, source_uri=source_uri.strip())
        headers, what = self._idempotency(job_id, custom_id, idempotency_key), "files_submit()"
        answer = yield from self._call(
            "POST", "files/v1/uri", what, json=body, extra_headers=headers
        )
        return self._file_id(answer, what)

    def upload(
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
    ) -> Flow[str]:
        """``POST /files/v1``: upload one document (path, bytes, file); returns its file_id."""
        body = self._common(
            outputs=outputs,
            options=options,
            image_output_mode=image_output_mode,
            metadata=metadata,
            callback_url=callback_url,
            callback_headers=callback_headers,
            callback_events=callback_events,
        )
        fields = self._single_fields(
            job_id, custom_id, filename, destination_uri, destination_basename, s3_region
        )
        form = {k: fields.pop(k) for k in ("job_id", "custom_id", "filename") if k in fields}
        body.update(fields)
        data, name, source = _read_document(document)
        what = f"files_upload({source})"
        headers = self._idempotency(job_id, custom_id, idempotency_key)
        content_type = "application/pdf" if name.lower().endswith(".pdf") else None
        part = (name, data, content_type) if content_type else (name, data)
        answer = yield from self._call(
            "POST",
            "files/v1",
            what,
            extra_headers=headers,
            files={"file": part},
            data={"options_json": json.dumps(body, separators=(",", ":")), **form},
        )
        return self._file_id(answer, what)

    def submit_job(
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
    ) -> Flow[JobSubmission]:
        """``POST /files/v1/jobs``: many documents in one call (up to 200,000)."""
        items = [_item(f, i) for i, f in enumerate(files)]
        if not items:
            raise ConfigurationError("files must name at least one document")
        _ident("job_id", job_id)
        seen: set[str] = set()
        for index, item in enumerate(items):
            cid = item.get("custom_id")
            if cid is None:
                continue
            if job_id is None:
                raise ConfigurationError(
                    f"files[{index}] has a custom_id but the job has no job_id. Fix: pass "
                    "job_id= (the pair job_id, custom_id names a file)"
                )
            if cid in seen:
                raise ConfigurationError(f"files[{index}]: custom_id {cid!r} is used twice")
            seen.add(cid)
        body = self._common(
            outputs=outputs,
            options=options,
            image_output_mode=image_output_mode,
            metadata=metadata,
            callback_url=callback_url,
            callback_headers=callback_headers,
            callback_events=callback_events,
        )
        body["files"] = items
        headers: dict[str, str] = {}
        if job_id is not None:
            body["job_id"] = job_id
            safe = len(seen) == len(items)  # a replay of named items queues nothing new
            fix = (
                f"check files_job_status('{job_id}') and files_list('{job_id}') before "
                "submitting again; give every item a custom_id to make resubmitting safe"
            )
        else:
            key = _ident("idempotency_key", idempotency_key) or secrets.token_hex(16)
            headers["Idempotency-Key"] = key
            safe, fix = True, ""
        answer = yield from self._call(
            "POST",
            "files/v1/jobs",
            "files_job()",
            json=body,
            extra_headers=headers,
            safe_to_resend=safe,
            uncertain_fix=fix,
        )
        new_job = answer.get("job_id")
        if not new_job:
            raise APIError("POST /files/v1/jobs answered without job_id", body=answer)
        rejected = answer.get("rejected")
        return JobSubmission(
            job_id=str(new_job),
            file_count=_int(answer.get("file_count")),
            rejected=tuple(r for r in rejected if isinstance(r, dict))
            if isinstance(rejected, list)
            else (),
            raw=answer,
        )

    def _single_fields(
        self,
        job_id: str | None,
        custom_id: str | None,
        filename: str | None,
        destination_uri: str | None,
        destination_basename: str | None,
        s3_region: str | None,
    ) -> dict[str, Any]:
        _ident("job_id", job_id)
        _ident("custom_id", custom_id)
        if custom_id is not None and job_id is None:
            raise ConfigurationError(
                "custom_id needs a job_id: the pair (job_id, custom_id) names the file"
            )
        values = {
            "job_id": job_id,
            "custom_id": custom_id,
            "filename": filename,
            "destination_uri": destination_uri,
            "destination_basename": destination_basename,
            "s3_region": s3_region,
        }
        return {k: v for k, v in values.items() if v is not None}

    def _idempotency(
        self, job_id: str | None, custom_id: str | None, key: str | None
    ) -> dict[str, str]:
        """A single-document submit is always safe to resend: the (job_id, custom_id) pair
        names it, or else an Idempotency-Key (the caller's, or a fresh random one) does."""
        _ident("idempotency_key", key)
        if job_id is not None and custom_id is not None and key is None:
            return {}
        return {"Idempotency-Key": key or secrets.token_hex(16)}

    @staticmethod
    def _file_id(answer: Mapping[str, Any], what: str) -> str:
        file_id = answer.get("file_id")
        if not file_id:
            raise APIError(f"{what}: the answer has no file_id", body=dict(answer))
        return str(file_id)

    # -- documents -------------------------------------------------------------------------

    def status(self, file_id: str) -> Flow[FileStatus]:
        """``GET /files/v1/{file_id}``."""
        body = yield from self._call("GET", f"files/v1/{_seg(file_id)}", f"file {file_id}")
        return FileStatus.from_body(body)

    def by_custom_id(self, job_id: str, custom_id: str) -> Flow[FileStatus]:
        """``GET /files/v1/jobs/{job_id}/files/{custom_id}``."""
        path = f"files/v1/jobs/{_seg(job_id)}/files/{_seg(custom_id)}"
        body = yield from self._call("GET", path, f"file {custom_id!r} of job {job_id}")
        return FileStatus.from_body(body)

    def download(self, file_id: str, ext: str = "mmd") -> Flow[bytes]:
        """``GET /files/v1/{file_id}.{ext}``: the bytes, or ``PdfError`` (``format_not_ready``
        while converting; a 409 of older deployments means the same), ``InvalidRequestError``
        (``unsupported_format``: not requested at submission), ``NotFoundError``."""
        ext = "tex.zip" if ext == "tex" else ext
        what = f"file {file_id}.{ext}"
        response = yield from self._send("GET", f"files/v1/{_seg(file_id)}.{ext}", what)
        if response.status_code == 200:
            return response.content
        if response.status_code == 409:
            raise PdfError(
                f"format_not_ready: {what} is not ready yet (HTTP 409). Fix: wait with "
                "files_wait() or poll files_status()",
                status_code=409,
                error_id="format_not_ready",
            )
        raise self.error(response, what)

    def delete(self, file_id: str) -> Flow[dict[str, Any]]:
        """``DELETE /files/v1/{file_id}``: ``{"file_id", "status": "deleted"}`` (idempotent);
        ``ConflictError`` while it is still processing."""
        return (yield from self._call("DELETE", f"files/v1/{_seg(file_id)}", f"file {file_id}"))

    def wait(
        self,
        file_id: str,
        *,
        formats: bool = True,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> Flow[FileStatus]:
        """Poll until the file is final (and, with ``formats``, every requested format too).
        Returns the last status, also when it ended in ``error`` (see ``.ok``)."""
        limit = 600.0 if timeout is None else float(timeout)
        deadline = self.core.clock.monotonic() + limit
        interval = 0.25 if poll_interval is None else float(poll_interval)
        while True:
            status = yield from self.status(file_id)
            if status.done or (status.finished and not formats):
                return status
            left = deadline - self.core.clock.monotonic()
            if left <= 0:
                raise PollTimeoutError(
                    f"file {file_id} was still {status.status} ({status.percent_done:g} %) "
                    f"after {limit:g} s. Fix: pass a longer timeout=, or check later with "
                    f"files_status('{file_id}')"
                )
            yield Sleep(min(interval, left), "poll")
            if poll_interval is None:
                interval = min(5.0, interval * 1.5)

    # -- jobs --------------------------------------------------------------------------------

    def job_status(self, job_id: str) -> Flow[FilesJob]:
        """``GET /files/v1/jobs/{job_id}``."""
        body = yield from self._call("GET", f"files/v1/jobs/{_seg(job_id)}", f"job {job_id}")
        return FilesJob.from_body(body)

    def wait_job(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> Flow[FilesJob]:
        """Poll the job's counters until every file is final."""
        limit = 3600.0 if timeout is None else float(timeout)
        deadline = self.core.clock.monotonic() + limit
        interval = 0.5 if poll_interval is None else float(poll_interval)
        while True:
            job = yield from self.job_status(job_id)
            if job.done:
                return job
            left = deadline - self.core.clock.monotonic()
            if left <= 0:
                raise PollTimeoutError(
                    f"job {job_id} still had {job.files_pending} of {job.file_count} files "
                    f"pending after {limit:g} s. Fix: pass a longer timeout=, or resume later "
                    f"with files_job_status('{job_id}')"
                )
            yield Sleep(min(interval, left), "poll")
            if poll_interval is None:
                interval = min(10.0, interval * 1.5)

    def files_page(
        self,
        job_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        paging_state: str | None = None,
    ) -> Flow[tuple[list[FileEntry], str | None]]:
        """One page of ``GET /files/v1/jobs/{job_id}/files`` and the next page's token."""
        if status is not None and status not in ("pending", "completed", "error"):
            raise ConfigurationError(
                f"status must be 'pending', 'completed' or 'error', got {status!r}"
            )
        params: dict[str, Any] = {"limit": int(limit)}
        if status is not None:
            params["status"] = status
        if paging_state:
            params["paging_state"] = paging_state
        path = f"files/v1/jobs/{_seg(job_id)}/files"
        body = yield from self._call("GET", path, f"files of job {job_id}", params=params)
        items = body.get("files")
        entries = [FileEntry.from_body(f) for f in items if isinstance(f, dict)] if items else []
        token = body.get("next_page_token")
        return entries, (str(token) if token else None)

    def jobs_page(
        self,
        *,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        paging_state: str | None = None,
    ) -> Flow[tuple[list[dict[str, Any]], str | None]]:
        """One page of ``GET /files/v1/jobs`` (newest first): ``[{job_id, created_at}]``."""
        params: dict[str, Any] = {"limit": int(limit)}
        for name, value in (("start", start), ("end", end), ("paging_state", paging_state)):
            if value:
                params[name] = value
        body = yield from self._call("GET", "files/v1/jobs", "files_jobs()", params=params)
        jobs = [j for j in body.get("jobs") or [] if isinstance(j, dict)]
        token = body.get("next_page_token")
        return jobs, (str(token) if token else None)

    def finalize(self, job_id: str) -> Flow[dict[str, Any]]:
        """``POST /files/v1/jobs/{job_id}/finalize``: no new files; ``job.completed`` fires
        once every file is final. Idempotent."""
        path = f"files/v1/jobs/{_seg(job_id)}/finalize"
        return (yield from self._call("POST", path, f"finalize job {job_id}"))

    # -- data sources and webhooks ---------------------------------------------------------

    def identities(self) -> Flow[dict[str, Any]]:
        """``GET /files/v1/onboarding/identities``: who to grant bucket access to."""
        return (yield from self._call("GET", "files/v1/onboarding/identities", "identities"))

    def data_source_register(
        self,
        provider: str,
        bucket: str,
        auth_method: str,
        details: Mapping[str, str],
        *,
        name: str | None = None,
        region: str | None = None,
        secret: str | None = None,
    ) -> Flow[str]:
        """``POST /files/v1/data-sources``; returns the data_source_id."""
        body: dict[str, Any] = {
            "provider": provider,
            "bucket": bucket,
            "auth_method": auth_method,
            "provider_specific_details": dict(details),
        }
        for key, value in (("name", name), ("region", region), ("secret", secret)):
            if value is not None:
                body[key] = value
        what = f"data source {provider}:{bucket}"
        answer = yield from self._call("POST", "files/v1/data-sources", what, json=body)
        ds_id = answer.get("data_source_id")
        if not ds_id:
            raise APIError(f"{what}: the answer has no data_source_id", body=answer)
        return str(ds_id)

    def data_sources(self) -> Flow[list[dict[str, Any]]]:
        body = yield from self._call("GET", "files/v1/data-sources", "data sources")
        return [d for d in body.get("data_sources") or [] if isinstance(d, dict)]

    def data_source_test(self, data_source_id: str) -> Flow[dict[str, Any]]:
        """The probe (``{"result": "ok"|"failed", "checks", "message"}``): a failed probe is
        data, not an exception."""
        path = f"files/v1/data-sources/{_seg(data_source_id)}/test"
        return (yield from self._call("POST", path, f"data source {data_source_id}"))

    def data_source_delete(self, data_source_id: str) -> Flow[dict[str, Any]]:
        path = f"files/v1/data-sources/{_seg(data_source_id)}"
        return (yield from self._call("DELETE", path, f"data source {data_source_id}"))

    def webhook_secret(self) -> Flow[str]:
        """``GET /files/v1/webhook-config``: the signing secret (created on first use)."""
        body = yield from self._call("GET", "files/v1/webhook-config", "webhook config")
        secret = body.get("signing_secret")
        if not isinstance(secret, str) or not secret:
            raise APIError("webhook-config answered without signing_secret")
        return secret

    def webhook_test(
        self, callback_url: str, callback_headers: Mapping[str, str] | None = None
    ) -> Flow[dict[str, Any]]:
        """``POST /files/v1/webhook-config/test``: ``{"status": "delivered"|"failed",
        "response_code", "detail"}`` (a refused delivery is data, not an exception)."""
        body: dict[str, Any] = {"callback_url": callback_url}
        if callback_headers is not None:
            body["callback_headers"] = dict(callback_headers)
        return (
            yield from self._call("POST", "files/v1/webhook-config/test", "webhook test", json=body)
        )
