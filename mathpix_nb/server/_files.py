"""The Files API (``/files/v1``) of the local server: single-document and batch submissions,
status, listings, downloads, deletes, data sources, webhooks (see docs/files-api.md).

Requests only validate and record; documents are processed later by a small pool of worker
tasks per region (``files_workers``) through the v3/pdf pipeline (``_documents.run_document``),
so a 200,000-item job is accepted without any per-item I/O in the request. Errors are
Files-API style: real HTTP status codes and ``{"error": "<id>", "error_info": {"id",
"message"}}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
from starlette.requests import Request

from . import _files_state
from ._core import (
    CONVERSION_FORMATS,
    Call,
    Handler,
    Reply,
    ServerState,
    fetch_src,
    parse_multipart,
    read_upload,
)
from ._documents import run_document, valid_page_ranges
from ._files_sources import (
    AUTH_METHODS,
    Location,
    LocationError,
    data_source_for,
    gcs_verified,
    parse_location,
    private_host,
    probe,
    read_object,
    write_objects,
)
from ._files_store import (
    ALWAYS_FORMATS,
    DEFAULT_FILE_EVENTS,
    DEFAULT_JOB_EVENTS,
    EVENTS,
    TERMINAL,
    TEST_FILE_ID,
    Callback,
    DataSource,
    FileRecord,
    FilesAccount,
    FilesRegion,
    JobRecord,
    Submission,
    new_file_id,
    new_file_ids,
)
from ._store import PdfJob, iso

logger = logging.getLogger("mathpix_nb.server")

_IDENT = re.compile(r"^[A-Za-z0-9_\-.:]{1,256}$")
_RESERVED_HEADERS = (
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
)
MAX_CALLBACK_HEADERS = 10
MAX_CALLBACK_HEADER_BYTES = 4096
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
TEST_DELIVERIES_PER_MINUTE = 10
#: request keys that are not OCR options
_FILES_KEYS = frozenset(
    {
        "source_uri",
        "conversion_formats",
        "job_id",
        "scs_job_id",
        "custom_id",
        "filename",
        "destination_uri",
        "destination_s3_uri",
        "destination_basename",
        "s3_region",
        "image_output_mode",
        "metadata",
        "callback_url",
        "callback_headers",
        "callback_events",
        "files",
    }
)
_MEDIA = {
    "mmd": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "lines.json": "application/json",
    "lines.mmd.json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "latex.pdf": "application/pdf",
    "mmd.overlay.pdf": "application/pdf",
}

_ACCOUNTS: weakref.WeakKeyDictionary[ServerState, FilesAccount] = weakref.WeakKeyDictionary()


def account_of(state: ServerState) -> FilesAccount:
    """The Files API state of ``state`` (created, and reloaded from ``files_state_dir``, on
    first use)."""
    found = _ACCOUNTS.get(state)
    if found is None:
        found = FilesAccount(tuple(state.stores))
        _ACCOUNTS[state] = found
    if not found.loaded:
        found.loaded = True
        if state.config.files_state_dir is not None:
            for region in _files_state.load(found, state.config.files_state_dir):
                _ensure_workers(state, found, region)
    return found


# --------------------------------------------------------------------------- errors, parsing


def ferror(http_status: int, error_id: str, message: str, /, **extra: Any) -> Reply:
    """A Files API error: ``{"error": id, "error_info": {"id", "message"}, **extra}``."""
    body = {"error": error_id, "error_info": {"id": error_id, "message": message}, **extra}
    return Reply(body, status=http_status)


def bad_request(message: str) -> Reply:
    return ferror(400, "bad_request", message)


def not_found(what: str) -> Reply:
    return ferror(404, "not_found", f"{what} not found")


def _authenticate(state: ServerState, call: Call) -> Reply | None:
    """Files API auth: an ``app_key`` header (``app_id`` is accepted and ignored)."""
    key = call.request.headers.get("app_key")
    if key is None or not secrets.compare_digest(key.encode(), state.app_key.encode()):
        return ferror(401, "unauthorized", "Missing or invalid app_key header")
    call.auth_mode = "keys" if "app_id" in call.request.headers else "app_key"
    return None


def files_handler(
    fn: Callable[[ServerState, Call, FilesAccount, FilesRegion], Awaitable[Reply]],
) -> Handler:
    async def handler(state: ServerState, call: Call) -> Reply:
        denied = _authenticate(state, call)
        if denied is not None:
            return denied
        account = account_of(state)
        return await fn(state, call, account, account.regions[call.region])

    handler.__name__ = fn.__name__
    return handler


# a job of the most items the API takes, at a generous 4 KB per item description
JOBS_BODY_LIMIT = 200_000 * 4096


def _read_json(call: Call, limit: int) -> dict[str, Any] | Reply:
    if len(call.body) > limit:
        return ferror(413, "payload_too_large", f"Request body is larger than {limit} bytes")
    try:
        body = json.loads(call.body) if call.body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return bad_request("Request body is not valid JSON")
    if not isinstance(body, dict):
        return bad_request("Request body must be a JSON object")
    return body


def _ident(name: str, value: Any) -> str | Reply | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _IDENT.match(value):
        return bad_request(
            f"{name} must be 1-256 characters from A-Z a-z 0-9 _ - . : (got {value!r:.80})"
        )
    return value


def _callback(
    body: dict[str, Any], default_events: tuple[str, ...], allow_http: bool
) -> Callback | Reply | None:
    url = body.get("callback_url")
    headers = body.get("callback_headers")
    events = body.get("callback_events")
    if url is None:
        if headers is not None or events is not None:
            return bad_request("callback_headers and callback_events require callback_url")
        return None
    checked = check_callback_url(url, allow_http)
    if isinstance(checked, Reply):
        return checked
    pairs = _callback_headers(headers)
    if isinstance(pairs, Reply):
        return pairs
    if events is None:
        chosen = default_events
    elif not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return bad_request("callback_events: must be a list of event names")
    else:
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            return bad_request(
                f"callback_events: unknown event(s) {', '.join(unknown)}; use {', '.join(EVENTS)}"
            )
        chosen = tuple(dict.fromkeys(events))
    return Callback(url, pairs, chosen)


def check_callback_url(url: Any, allow_http: bool) -> str | Reply:
    """Webhook URLs must be https and public (``webhook_allow_http`` lifts both, for tests)."""
    if not isinstance(url, str) or not url:
        return bad_request("callback_url: must be a non-empty string")
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        return bad_request("callback_url: callback_url must be https")
    if not allow_http and private_host(parts.hostname):
        return bad_request("callback_url: callback_url must not point to a private network")
    return url


def _callback_headers(headers: Any) -> tuple[tuple[str, str], ...] | Reply:
    if headers is None:
        return ()
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return bad_request("callback_headers: must be an object of string names to string values")
    if len(headers) > MAX_CALLBACK_HEADERS:
        return bad_request(f"callback_headers: at most {MAX_CALLBACK_HEADERS} headers")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())
    if size > MAX_CALLBACK_HEADER_BYTES:
        return bad_request(f"callback_headers: at most {MAX_CALLBACK_HEADER_BYTES} bytes in total")
    for name in headers:
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("mathpix-"):
            return bad_request(f"callback_headers: {name} is set by Mathpix and cannot be sent")
        if not re.match(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$", name):
            return bad_request(f"callback_headers: {name!r} is not a valid header name")
    return tuple(sorted(headers.items()))


def _formats(value: Any) -> tuple[str, ...] | Reply:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        return bad_request('conversion_formats: must be an object like {"docx": true, "md": true}')
    known = (*ALWAYS_FORMATS, *CONVERSION_FORMATS)
    unknown = [f for f in value if f not in known]
    if unknown:
        return bad_request(
            f"conversion_formats: unknown format(s) {', '.join(map(str, unknown))}; "
            f"use {', '.join(known)}"
        )
    return tuple(f for f, on in value.items() if on and f != "mmd")


def _submission(
    state: ServerState, call: Call, body: dict[str, Any], default_events: tuple[str, ...]
) -> Submission | Reply:
    """Request-level options shared by the documents of one submission."""
    formats = _formats(body.get("conversion_formats"))
    if isinstance(formats, Reply):
        return formats
    callback = _callback(body, default_events, state.config.webhook_allow_http)
    if isinstance(callback, Reply):
        return callback
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return bad_request("metadata: must be an object")
    mode = body.get("image_output_mode")
    if mode is not None and not isinstance(mode, str):
        return bad_request('image_output_mode: must be a string such as "local"')
    options = {k: v for k, v in body.items() if k not in _FILES_KEYS}
    ranges = options.get("page_ranges")
    if ranges is not None and (not isinstance(ranges, str) or not valid_page_ranges(ranges)):
        return bad_request('page_ranges: must look like "2,4-6" or "2 - -2"')
    return Submission(
        options=options,
        formats=formats,
        callback=callback,
        image_output_mode=mode,
        metadata=metadata,
        app_id=call.request.headers.get("app_id") or state.app_id,
        sub_id=secrets.token_hex(8),
    )


def _destination(region: FilesRegion, value: Any) -> Location | Reply | None:
    if value is None:
        return None
    try:
        loc = parse_location(value, "destination_uri")
    except LocationError as exc:
        return bad_request(exc.message)
    if loc.kind != "bucket":
        return bad_request(
            "destination_uri: must be an s3://, gs:// or Azure blob URI of a registered data source"
        )
    if data_source_for(region, loc) is None:
        return ferror(
            404,
            "data_source_not_found",
            f"destination_uri: no data source is registered for bucket {loc.bucket!r}",
        )
    return loc


def _opt_str(body: dict[str, Any], name: str) -> str | Reply | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    return bad_request(f"{name}: must be a string")


# --------------------------------------------------------------------------- submissions


def _live(rec: FileRecord | None) -> bool:
    """An idempotent replay returns the original while it is pending, split or completed."""
    return rec is not None and not rec.deleted and rec.current_status() != "error"


def _finalized_conflict(job: JobRecord | None) -> Reply | None:
    if job is not None and job.finalized_at is not None:
        return ferror(409, "conflict", f"Job {job.job_id} is finalized and accepts no new files")
    return None


async def _submit_one(
    state: ServerState,
    call: Call,
    account: FilesAccount,
    region: FilesRegion,
    body: dict[str, Any],
    *,
    source: str | None,
    upload: bytes | None,
    upload_name: str | None,
) -> Reply:
    """``POST /files/v1/uri`` and ``POST /files/v1`` after their bodies are read."""
    job_id = _ident("job_id", body.get("job_id", body.get("scs_job_id")))
    if isinstance(job_id, Reply):
        return job_id
    custom_id = _ident("custom_id", body.get("custom_id"))
    if isinstance(custom_id, Reply):
        return custom_id
    if custom_id is not None and job_id is None:
        return bad_request("custom_id requires job_id: (job_id, custom_id) identifies a file")
    idem = _ident("Idempotency-Key", call.request.headers.get("idempotency-key"))
    if isinstance(idem, Reply):
        return idem
    strings = {n: _opt_str(body, n) for n in ("filename", "destination_basename", "s3_region")}
    for value in strings.values():
        if isinstance(value, Reply):
            return value
    events = DEFAULT_JOB_EVENTS if job_id is not None else DEFAULT_FILE_EVENTS
    sub = _submission(state, call, body, events)
    if isinstance(sub, Reply):
        return sub
    if source is not None:
        try:
            loc = parse_location(source)
        except LocationError as exc:
            return bad_request(exc.message)
        if loc.kind == "bucket" and data_source_for(region, loc) is None:
            return ferror(
                404,
                "data_source_not_found",
                f"source_uri: no data source is registered for bucket {loc.bucket!r}",
            )
    dest = _destination(region, body.get("destination_uri", body.get("destination_s3_uri")))
    if isinstance(dest, Reply):
        return dest
    job = region.jobs.get(job_id) if job_id is not None else None
    if job is not None and custom_id is not None and _live(job.by_custom_id.get(custom_id)):
        return Reply({"file_id": job.by_custom_id[custom_id].file_id})
    idem_key = f"file|{idem}" if idem is not None else None
    if idem_key is not None and (job_id is None or custom_id is None):
        previous = region.idempotency.get(idem_key)
        if previous is not None:
            return Reply(dict(previous))
    conflict = _finalized_conflict(job)
    if conflict is not None:
        return conflict
    now = time.time()
    file_id = new_file_id()
    filename = strings["filename"] or upload_name or f"{file_id}.pdf"
    rec = FileRecord(
        file_id=file_id,
        seq=region.next_seq(),
        created=now,
        modified=now,
        submission=sub,
        source_uri=source,
        filename=str(filename),
        custom_id=custom_id,
        job_id=job_id,
        destination_uri=dest.uri if isinstance(dest, Location) else None,
        destination_basename=_as_str(strings["destination_basename"]),
        s3_region=_as_str(strings["s3_region"]),
        upload=upload,
    )
    rec.formats = {f: "pending" for f in sub.formats}
    region.files[file_id] = rec
    created_job = False
    if job_id is not None:
        job, created_job = region.job(job_id, now)
        _add_callback(job, sub.callback)
        job.add(rec, index_custom_id=True)
    response = {"file_id": file_id}
    if idem_key is not None:
        region.idempotency[idem_key] = response
    journal = account.journal
    if journal is not None:
        await journal.submission(
            region.name, sub, [rec], job if created_job else None, idem_key, response
        )
        if job is not None and not created_job and sub.callback is not None:
            await journal.job(region.name, job)
    call.request_id = file_id
    _enqueue(state, account, region, [rec])
    return Reply(dict(response))


def _as_str(value: str | Reply | None) -> str | None:
    return value if isinstance(value, str) else None


def _add_callback(job: JobRecord, callback: Callback | None) -> None:
    if callback is not None and callback.wants("job.completed") and callback not in job.callbacks:
        job.callbacks.append(callback)


async def handle_uri(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    body = _read_json(call, state.config.max_body_bytes)
    if isinstance(body, Reply):
        return body
    source = body.get("source_uri")
    if not isinstance(source, str) or not source:
        return bad_request(
            "source_uri: is required (an https:// URL, s3://, gs:// or Azure blob URI)"
        )
    return await _submit_one(
        state, call, account, region, body, source=source, upload=None, upload_name=None
    )


async def handle_upload(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    limit = state.config.max_pdf_bytes
    if not call.request.headers.get("content-type", "").startswith("multipart/form-data"):
        return bad_request(
            "POST /files/v1 takes multipart/form-data with a 'file' part (and options_json); "
            "submit URLs with POST /files/v1/uri"
        )
    if len(call.body) > limit:
        return ferror(413, "payload_too_large", f"Upload is larger than {limit} bytes")
    parsed = await read_upload(call)
    if isinstance(parsed, Reply):  # v3-style envelope from the shared reader
        info = parsed.body.get("error_info", {}) if isinstance(parsed.body, dict) else {}
        return bad_request(str(info.get("message", "Cannot read the multipart body")))
    data, options = parsed.data, parsed.options
    if data is None:
        return bad_request("file: the multipart body needs a 'file' part with the document")
    parts = parse_multipart(call.body, call.request.headers.get("content-type", ""))
    fields = parts if isinstance(parts, dict) else {}
    upload_name = parsed.filename or None
    for name in ("job_id", "scs_job_id", "custom_id", "filename"):
        field = fields.get(name)
        value = field.data.decode("utf-8", "replace") if field is not None else ""
        if value:
            options[name] = value
    call.image_sha256 = hashlib.sha256(data).hexdigest()
    return await _submit_one(
        state, call, account, region, options, source=None, upload=data, upload_name=upload_name
    )


async def handle_jobs_new(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    cfg = state.config
    body = _read_json(call, max(cfg.max_body_bytes, cfg.files_max_items * 4096))
    if isinstance(body, Reply):
        return body
    items = body.get("files")
    if not isinstance(items, list) or not items:
        return bad_request("files: must be a non-empty list of {source_uri, custom_id?, ...}")
    if len(items) > cfg.files_max_items:
        return bad_request(f"files: at most {cfg.files_max_items} files per call, got {len(items)}")
    job_id = _ident("job_id", body.get("job_id"))
    if isinstance(job_id, Reply):
        return job_id
    idem = _ident("Idempotency-Key", call.request.headers.get("idempotency-key"))
    if isinstance(idem, Reply):
        return idem
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return bad_request(f"files[{index}]: must be an object with source_uri")
        checked = _ident(f"files[{index}].custom_id", item.get("custom_id"))
        if isinstance(checked, Reply):
            return checked
        if checked is not None and job_id is None:
            return bad_request(f"files[{index}].custom_id requires a job_id for the batch")
        for name in ("filename", "destination_basename", "s3_region", "page_ranges"):
            if item.get(name) is not None and not isinstance(item[name], str):
                return bad_request(f"files[{index}].{name}: must be a string")
        ranges = item.get("page_ranges")
        if ranges is not None and not valid_page_ranges(ranges):
            return bad_request(f'files[{index}].page_ranges: must look like "2,4-6" or "2 - -2"')
    sub = _submission(state, call, body, DEFAULT_JOB_EVENTS)
    if isinstance(sub, Reply):
        return sub
    idem_key = f"job|{idem}" if idem is not None and job_id is None else None
    if idem_key is not None and idem_key in region.idempotency:
        return Reply(dict(region.idempotency[idem_key]))
    existing = region.jobs.get(job_id) if job_id is not None else None
    conflict = _finalized_conflict(existing)
    if conflict is not None:
        return conflict
    now = time.time()
    job, created_job = region.job(job_id or new_file_id(), now)
    _add_callback(job, sub.callback)
    reject = cfg.files_jobs_response == "reject"
    rejected: list[dict[str, Any]] = []
    records: list[FileRecord] = []
    seen: set[str] = set()
    ids = iter(new_file_ids(len(items)))
    formats = dict.fromkeys(sub.formats, "pending")
    for index, item in enumerate(items):
        if index % 5000 == 4999:
            await anyio.sleep(0)  # a 200,000-item job must not freeze the other requests
        custom_id = item.get("custom_id")
        source = item.get("source_uri")
        dest = item.get("destination_uri", item.get("destination_s3_uri"))
        # accept-and-defer: sources are checked by the workers; "reject" checks them now
        problem = _item_problem(region, source, dest) if reject else None
        if custom_id is not None:
            if custom_id in seen:
                problem = ("duplicate_custom_id", f"custom_id {custom_id!r} appears twice in files")
            elif problem is None and _live(job.by_custom_id.get(custom_id)):
                seen.add(custom_id)
                continue  # idempotent replay: the original file stands, nothing is queued
            seen.add(custom_id)
        if problem is not None and reject:
            rejected.append(
                {"index": index, "source_uri": source, "custom_id": custom_id, "reason": problem[0]}
            )
            continue
        file_id = next(ids)
        rec = FileRecord(
            file_id=file_id,
            seq=region.next_seq(),
            created=now,
            modified=now,
            submission=sub,
            source_uri=source if isinstance(source, str) else "",
            filename=item.get("filename") or f"{file_id}.pdf",
            custom_id=custom_id,
            job_id=job.job_id,
            destination_uri=dest if isinstance(dest, str) else None,
            destination_basename=item.get("destination_basename"),
            s3_region=item.get("s3_region"),
            page_ranges=item.get("page_ranges"),
            preset_error=problem,
        )
        if formats:
            rec.formats = dict(formats)
        region.files[file_id] = rec
        job.add(rec, index_custom_id=problem is None)
        records.append(rec)
    response: dict[str, Any] = {"job_id": job.job_id}
    if reject:
        response["file_count"] = len(items) - len(rejected)
        response["rejected"] = rejected
    else:
        response["file_count"] = len(items)
    if idem_key is not None:
        region.idempotency[idem_key] = response
    journal = account.journal
    if journal is not None:
        await journal.submission(
            region.name, sub, records, job if created_job else None, idem_key, response
        )
        if not created_job and sub.callback is not None:
            await journal.job(region.name, job)
    call.request_id = job.job_id
    _enqueue(state, account, region, records)
    if not records and job.finalized_at is not None:
        _job_maybe_done(state, account, region, job)
    return Reply(response)


def _item_problem(region: FilesRegion, source: Any, dest: Any) -> tuple[str, str] | None:
    """Per-item failures found without I/O: bad source, unknown data source, bad destination
    (``source`` None for a direct upload)."""
    if source is not None:
        try:
            loc = parse_location(source)
        except LocationError as exc:
            return exc.error_id, exc.message
        if loc.kind == "bucket" and data_source_for(region, loc) is None:
            return (
                "data_source_not_found",
                f"source_uri: no data source is registered for bucket {loc.bucket!r}",
            )
    if dest is not None:
        try:
            dloc = parse_location(dest, "destination_uri")
        except LocationError as exc:
            return exc.error_id, exc.message
        if dloc.kind != "bucket":
            return "invalid_destination_uri", "destination_uri: must be a bucket URI"
        if data_source_for(region, dloc) is None:
            return (
                "data_source_not_found",
                f"destination_uri: no data source is registered for bucket {dloc.bucket!r}",
            )
    return None


# --------------------------------------------------------------------------- processing


def _enqueue(
    state: ServerState, account: FilesAccount, region: FilesRegion, recs: Iterable[FileRecord]
) -> None:
    region.queue.extend(recs)
    _ensure_workers(state, account, region)


def _ensure_workers(state: ServerState, account: FilesAccount, region: FilesRegion) -> None:
    want = min(state.config.files_workers, len(region.queue))
    while region.workers < want:
        region.workers += 1
        state.spawn(_worker(state, account, region))


async def _worker(state: ServerState, account: FilesAccount, region: FilesRegion) -> None:
    try:
        while region.queue:
            rec = region.queue.popleft()
            if rec.deleted or rec.status in TERMINAL:
                continue
            try:
                await _process(state, account, region, rec)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                logger.exception("local server bug while processing file %s", rec.file_id)
                rec.live = None
                await _finish(
                    state, account, region, rec, ("sys_exception", "Internal server error")
                )
            await anyio.sleep(0)
    finally:
        region.workers -= 1


def _internal_call(state: ServerState, region: str) -> Call:
    """A stand-in request for the pipeline (it only needs one for stored v3 results, which
    Files API documents never write)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/files/v1",
        "headers": [],
        "query_string": b"",
    }
    return Call(Request(scope), region, "/files/v1", b"", state)


async def _process(
    state: ServerState, account: FilesAccount, region: FilesRegion, rec: FileRecord
) -> None:
    cfg = state.config
    sub = rec.submission
    problem = rec.preset_error or _item_problem(region, rec.source_uri, rec.destination_uri)
    if problem is not None:
        await _finish(state, account, region, rec, problem)
        return
    faults = cfg.file_faults
    if faults is not None and faults.fails(rec.source_uri, rec.custom_id, rec.filename):
        await _finish(state, account, region, rec, (faults.error_id, faults.message))
        return
    data = rec.upload
    if data is None:
        if rec.source_uri is None:
            await _finish(
                state, account, region, rec, ("pdf_download_error", "The upload was lost")
            )
            return
        fetched = await _fetch(state, region, rec.source_uri)
        if isinstance(fetched, tuple):
            await _finish(state, account, region, rec, fetched)
            return
        data = fetched
    rec.upload = None
    options = dict(sub.options)
    if rec.page_ranges is not None:
        options["page_ranges"] = rec.page_ranges
    job = PdfJob(
        pdf_id=rec.file_id,
        app_id=sub.app_id or state.app_id,
        created=rec.created,
        input_file=rec.source_uri or "upload",
        request_args={},
        conversion_formats=[f for f in sub.formats if f in CONVERSION_FORMATS],
        store_results=False,
        version=getattr(state.engine, "version", None),
    )
    rec.live = job
    await run_document(state, _internal_call(state, region.name), job, data, options)
    rec.num_pages, rec.num_pages_completed = job.num_pages or 0, job.num_pages_completed
    if job.status != "completed":
        info = job.error_info or {"id": "pdf_decode_error", "message": "The document failed"}
        rec.live = None
        await _finish(state, account, region, rec, (str(info["id"]), str(info["message"])))
        return
    rec.outputs = dict(job.outputs)
    rec.formats = {
        f: (
            "completed"
            if f in ALWAYS_FORMATS
            else str(job.conversion_status.get(f, {}).get("status", "error"))
        )
        for f in sub.formats
    }
    if rec.destination_uri is not None:
        problem = await _write_destination(state, region, rec)
    rec.live = None
    await _finish(state, account, region, rec, problem)


async def _fetch(state: ServerState, region: FilesRegion, uri: str) -> bytes | tuple[str, str]:
    cfg = state.config
    try:
        loc = parse_location(uri)
        if loc.kind == "url":
            fetched = await fetch_src(state, uri, limit=cfg.max_pdf_bytes, what="pdf")
            if isinstance(fetched, Reply):
                info = fetched.body["error_info"]
                return str(info["id"]), str(info["message"])
            return fetched
        if data_source_for(region, loc) is None:
            return (
                "data_source_not_found",
                f"no data source is registered for bucket {loc.bucket!r}",
            )
        return await anyio.to_thread.run_sync(read_object, cfg.bucket_root, loc, cfg.max_pdf_bytes)
    except LocationError as exc:
        return exc.error_id, exc.message


async def _write_destination(
    state: ServerState, region: FilesRegion, rec: FileRecord
) -> tuple[str, str] | None:
    assert rec.destination_uri is not None
    try:
        loc = parse_location(rec.destination_uri, "destination_uri")
        if data_source_for(region, loc) is None:
            return (
                "data_source_not_found",
                f"destination_uri: no data source is registered for bucket {loc.bucket!r}",
            )
        wanted = [*ALWAYS_FORMATS, *rec.submission.formats]
        outputs = {ext: rec.outputs[ext] for ext in dict.fromkeys(wanted) if ext in rec.outputs}
        basename = rec.destination_basename or rec.file_id
        await anyio.to_thread.run_sync(
            write_objects, state.config.bucket_root, loc, basename, outputs
        )
    except LocationError as exc:
        return exc.error_id, exc.message
    except OSError as exc:
        return (
            "destination_write_error",
            f"Cannot write results to {rec.destination_uri}: {exc.strerror}",
        )
    return None


async def _finish(
    state: ServerState,
    account: FilesAccount,
    region: FilesRegion,
    rec: FileRecord,
    problem: tuple[str, str] | None,
) -> None:
    """Make ``rec`` terminal, count it in its job, persist it and send its notifications."""
    rec.live = None
    rec.upload = None
    rec.status = "error" if problem is not None else "completed"
    rec.error = problem
    rec.modified = time.time()
    if problem is not None:
        rec.formats = {f: ("error" if s != "completed" else s) for f, s in rec.formats.items()}
    job = region.jobs.get(rec.job_id) if rec.job_id is not None else None
    if job is not None:
        if problem is None:
            job.completed += 1
        else:
            job.errored += 1
        job.modified = rec.modified
    journal = account.journal
    if journal is not None:
        await journal.finished(region.name, rec)
    callback = rec.submission.callback
    event = "file.error" if problem is not None else "file.completed"
    if callback is not None and callback.wants(event):
        state.spawn(_notify(state, account, callback, {"event": event, **rec.status_body()}))
    if job is not None:
        _job_maybe_done(state, account, region, job)


def _job_maybe_done(
    state: ServerState, account: FilesAccount, region: FilesRegion, job: JobRecord
) -> None:
    if job.notified or job.finalized_at is None or not job.done:
        return
    job.notified = True
    payload = {"event": "job.completed", **job.status_body()}
    for callback in job.callbacks:
        state.spawn(_notify(state, account, callback, payload))


# --------------------------------------------------------------------------- webhooks


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``Mathpix-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t." + body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def deliver(
    state: ServerState, account: FilesAccount, callback: Callback, payload: dict[str, Any]
) -> tuple[int | None, str | None]:
    """One signed POST of ``payload``; (HTTP status or None, failure detail or None)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        **dict(callback.headers),
        "Content-Type": "application/json",
        "User-Agent": "mathpix_nb-local-webhooks/1",
        "Mathpix-Signature": sign(account.secret(), body, int(time.time())),
    }
    try:
        response = await state.http.post(
            callback.url, content=body, headers=headers, timeout=10, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        return None, f"Could not deliver to the callback_url ({exc.__class__.__name__})"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"The callback_url answered HTTP {response.status_code}"


async def _notify(
    state: ServerState, account: FilesAccount, callback: Callback, payload: dict[str, Any]
) -> None:
    """A real event: one attempt, failures logged (polling stays authoritative)."""
    _code, detail = await deliver(state, account, callback, payload)
    if detail is not None:
        logger.warning("webhook %s not delivered: %s", payload.get("event"), detail)


# --------------------------------------------------------------------------- status, downloads


def _split_name(name: str) -> tuple[str, str | None]:
    file_id, _, ext = name.partition(".")
    return file_id, ext or None


async def handle_file_get(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    file_id, ext = _split_name(call.request.path_params["name"])
    rec = region.files.get(file_id)
    if rec is None or rec.deleted:
        return not_found(f"File {file_id}")
    if ext is None:
        return Reply(rec.status_body())
    return _download(rec, ext)


def _download(rec: FileRecord, ext: str) -> Reply:
    if ext == "tex":
        ext = "tex.zip"
    if ext not in ALWAYS_FORMATS and ext not in rec.submission.formats:
        return ferror(
            415,
            "unsupported_format",
            f"{ext} was not requested in conversion_formats for this file",
        )
    status = rec.current_status()
    if status == "error":
        error_id, message = rec.error or ("pdf_decode_error", "The document failed")
        return ferror(404, error_id, message, status="error")
    if status != "completed":
        return ferror(404, "format_not_ready", f"{ext} is not ready yet", status=status)
    if ext not in ALWAYS_FORMATS:
        state = rec.format_states().get(ext, "pending")
        if state == "error":
            return ferror(404, "conversion_error", f"The {ext} conversion failed", status=status)
        if state != "completed":
            return ferror(404, "format_not_ready", f"{ext} is still {state}", status=status)
    data = rec.output(ext)
    if data is None:
        return ferror(
            404, "conversion_error", f"{ext} is not available for this file", status=status
        )
    return Reply(data, media_type=_MEDIA.get(ext, "application/octet-stream"))


async def handle_file_delete(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    file_id, _ = _split_name(call.request.path_params["name"])
    rec = region.files.get(file_id)
    if rec is None:
        return not_found(f"File {file_id}")
    if not rec.deleted:
        if rec.live is not None or rec.status not in TERMINAL:
            return ferror(409, "conflict", "File is still processing")
        rec.deleted = True
        rec.outputs = {}
        job = region.jobs.get(rec.job_id) if rec.job_id is not None else None
        if job is not None:
            job.remove(rec)
        journal = account.journal
        if journal is not None:
            await journal.deleted(region.name, rec)
    return Reply({"file_id": file_id, "status": "deleted"})


# --------------------------------------------------------------------------- jobs


def _token(kind: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode().rstrip("=")


def _untoken(kind: str, token: str | None) -> int | Reply | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        got, _, seq = raw.partition(":")
        if got != kind:
            raise ValueError(raw)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return bad_request("paging_state: not a next_page_token of this listing")


def _limit(params: Any) -> int | Reply:
    raw = params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        return bad_request(f"limit: must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    if not 1 <= limit <= MAX_LIMIT:
        return bad_request(f"limit: must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def _job_of(call: Call, region: FilesRegion) -> JobRecord | Reply:
    job_id = call.request.path_params["job_id"]
    job = region.jobs.get(job_id)
    if job is None:
        return not_found(f"Job {job_id}")
    return job


async def handle_job_get(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    job = _job_of(call, region)
    return job if isinstance(job, Reply) else Reply(job.status_body())


async def handle_job_files(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    job = _job_of(call, region)
    if isinstance(job, Reply):
        return job
    params = call.request.query_params
    wanted = params.get("status")
    if wanted is not None and wanted not in ("pending", "completed", "error"):
        return bad_request(f"status: must be pending, completed or error, got {wanted!r}")
    limit = _limit(params)
    if isinstance(limit, Reply):
        return limit
    after = _untoken("f", params.get("paging_state"))
    if isinstance(after, Reply):
        return after
    index = job.page_after(after) if after is not None else 0
    page: list[dict[str, Any]] = []
    last_seq = None
    files = job.files
    while index < len(files) and len(page) < limit:
        rec = files[index]
        index += 1
        if wanted is not None:
            status = rec.current_status()
            if (status if status in TERMINAL else "pending") != wanted:
                continue
        page.append(rec.listing_item(wanted is not None))
        last_seq = rec.seq
    more = index < len(files) and last_seq is not None
    return Reply(
        {"files": page, "next_page_token": _token("f", last_seq) if more and last_seq else None}
    )


async def handle_job_file(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    job = _job_of(call, region)
    custom_id = call.request.path_params["custom_id"]
    rec = None if isinstance(job, Reply) else job.by_custom_id.get(custom_id)
    if rec is None or rec.deleted:
        return not_found(f"File with custom_id {custom_id!r} in this job")
    return Reply(rec.status_body())


async def handle_job_finalize(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    job = _job_of(call, region)
    if isinstance(job, Reply):
        return job
    if job.finalized_at is None:
        job.finalized_at = time.time()
        job.modified = job.finalized_at
        journal = account.journal
        if journal is not None:
            await journal.job(region.name, job)
        _job_maybe_done(state, account, region, job)
    return Reply(
        {
            "job_id": job.job_id,
            "finalized_at": iso(job.finalized_at),
            "message": "Job finalized: it accepts no new files, and job.completed is sent "
            "once every file has finished",
        }
    )


def _day(name: str, value: str) -> datetime | Reply:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return bad_request(f"{name}: must be a date yyyy-MM-dd (UTC), got {value!r}")


async def handle_jobs_list(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    params = call.request.query_params
    limit = _limit(params)
    if isinstance(limit, Reply):
        return limit
    before = _untoken("j", params.get("paging_state"))
    if isinstance(before, Reply):
        return before
    start, end = params.get("start"), params.get("end")
    lo, hi = float("-inf"), float("inf")
    if start or end:
        first = _day("start", start or end or "")
        if isinstance(first, Reply):
            return first
        last = _day("end", end or start or "")
        if isinstance(last, Reply):
            return last
        if last < first:
            return bad_request("end: must not be before start")
        lo, hi = first.timestamp(), (last + timedelta(days=1)).timestamp()
    jobs = sorted(region.jobs.values(), key=lambda j: j.seq, reverse=True)
    page: list[JobRecord] = []
    more = False
    for job in jobs:
        if before is not None and job.seq >= before:
            continue
        if not lo <= job.created < hi:
            continue
        if len(page) == limit:
            more = True
            break
        page.append(job)
    return Reply(
        {
            "jobs": [{"job_id": j.job_id, "created_at": iso(j.created)} for j in page],
            "next_page_token": _token("j", page[-1].seq) if more else None,
        }
    )


# --------------------------------------------------------------------------- data sources


async def handle_identities(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    external_id = account.group_external_id()
    if account.journal is not None:
        await account.journal.account(account)
    return Reply(
        {
            "aws": {"trust_account_id": "000000000000", "external_id": external_id},
            "azure": {
                "app_id": "00000000-0000-4000-8000-00000000a221",
                "tenant_id": "00000000-0000-4000-8000-00000000e7a7",
            },
            "gcp": {
                "service_account_email": "files-api@mathpix-local.iam.gserviceaccount.com",
                "external_id": external_id,
            },
        }
    )


async def handle_ds_new(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    body = _read_json(call, state.config.max_body_bytes)
    if isinstance(body, Reply):
        return body
    provider, bucket, method = body.get("provider"), body.get("bucket"), body.get("auth_method")
    if provider not in AUTH_METHODS:
        return bad_request(f"provider: must be one of {', '.join(AUTH_METHODS)}, got {provider!r}")
    if not isinstance(bucket, str) or not bucket or "/" in bucket:
        return bad_request("bucket: must be a bucket or container name (no slashes)")
    methods = AUTH_METHODS[provider]
    if method not in methods:
        return bad_request(
            f"auth_method: {method!r} is not valid for {provider}; use {', '.join(methods)}"
        )
    details = body.get("provider_specific_details")
    if not isinstance(details, dict):
        return bad_request("provider_specific_details: must be an object")
    missing = [k for k in methods[method] if not isinstance(details.get(k), str) or not details[k]]
    if missing:
        return bad_request(
            f"provider_specific_details: {provider}/{method} needs {', '.join(missing)}"
        )
    name, region_name, secret = body.get("name"), body.get("region"), body.get("secret")
    for field_name, value in (("name", name), ("region", region_name), ("secret", secret)):
        if value is not None and not isinstance(value, str):
            return bad_request(f"{field_name}: must be a string")
    external_id = account.group_external_id()
    if method == "access_key":
        if not secret:
            return bad_request("secret: aws access_key data sources need the secret access key")
        if not region_name:
            return bad_request("region: is required for aws access_key data sources")
    elif secret is not None:
        return bad_request(f"secret: {provider}/{method} is keyless and takes no secret")
    if method == "iam_role" and details["aws_external_id"] != external_id:
        return bad_request(
            "provider_specific_details.aws_external_id: does not match your group's external_id "
            "(GET /files/v1/onboarding/identities)"
        )
    account_name = details.get("storage_account") if provider == "azure" else None
    clash = region.find_source(provider, bucket, account_name)
    if clash is not None:
        return ferror(
            409, "conflict", f"Bucket {bucket} is already registered as {clash.data_source_id}"
        )
    if name is not None and any(ds.name == name for ds in region.data_sources.values()):
        return ferror(409, "conflict", f"A data source named {name!r} already exists")
    if provider == "gcp":
        verified = gcs_verified(state.config.bucket_root, bucket, external_id)
        if verified is None:
            return ferror(503, "unavailable", f"Could not reach gs://{bucket} to verify it; retry")
        if not verified:
            return bad_request(
                f"GCS bucket-control verification failed: gs://{bucket}/.mathpix-verify must "
                "contain your external_id"
            )
    if provider == "aws" and not region_name:
        region_name = "us-east-1"  # discovered from the bucket for iam_role
    ds = DataSource(
        data_source_id="ds-" + secrets.token_hex(8),
        provider=provider,
        bucket=bucket,
        auth_method=method,
        details=dict(details),
        name=name,
        region=region_name,
        created=time.time(),
        secret=secret,
    )
    region.data_sources[ds.data_source_id] = ds
    if account.journal is not None:
        await account.journal.data_source(region.name, ds)
    return Reply({"data_source_id": ds.data_source_id})


async def handle_ds_list(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    items = sorted(region.data_sources.values(), key=lambda d: d.created)
    return Reply({"data_sources": [ds.public() for ds in items]})


def _ds_of(call: Call, region: FilesRegion) -> DataSource | Reply:
    ds_id = call.request.path_params["data_source_id"]
    ds = region.data_sources.get(ds_id)
    return ds if ds is not None else not_found(f"Data source {ds_id}")


async def handle_ds_test(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    ds = _ds_of(call, region)
    if isinstance(ds, Reply):
        return ds
    return Reply(await anyio.to_thread.run_sync(probe, state.config.bucket_root, ds))


async def handle_ds_delete(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    ds = _ds_of(call, region)
    if isinstance(ds, Reply):
        return ds
    del region.data_sources[ds.data_source_id]
    if account.journal is not None:
        await account.journal.data_source_deleted(region.name, ds)
    return Reply({"data_source_id": ds.data_source_id, "status": "deleted"})


# --------------------------------------------------------------------------- webhook config


async def handle_webhook_get(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    secret = account.secret()
    if account.journal is not None:
        await account.journal.account(account)
    return Reply({"signing_secret": secret})


async def handle_webhook_test(
    state: ServerState, call: Call, account: FilesAccount, region: FilesRegion
) -> Reply:
    body = _read_json(call, state.config.max_body_bytes)
    if isinstance(body, Reply):
        return body
    url = check_callback_url(body.get("callback_url"), state.config.webhook_allow_http)
    if isinstance(url, Reply):
        return url
    headers = _callback_headers(body.get("callback_headers"))
    if isinstance(headers, Reply):
        return headers
    now = time.monotonic()
    sent = account.test_deliveries
    while sent and sent[0] <= now - 60:
        sent.popleft()
    if len(sent) >= TEST_DELIVERIES_PER_MINUTE:
        return ferror(
            429,
            "http_max_requests",
            f"At most {TEST_DELIVERIES_PER_MINUTE} test deliveries per minute",
            limit_name="webhook_tests_per_minute",
            limit_value=TEST_DELIVERIES_PER_MINUTE,
        )
    sent.append(now)
    account.secret()
    if account.journal is not None:
        await account.journal.account(account)
    sample: dict[str, Any] = {
        "event": "file.completed",
        "file_id": TEST_FILE_ID,
        "status": "completed",
        "filename": "mathpix-webhook-test.pdf",
        "custom_id": None,
        "job_id": None,
        "num_pages": 1,
        "num_pages_completed": 1,
        "percent_done": 100.0,
        "format_primary": "mmd",
        "formats": {},
        "created_at": iso(time.time()),
        "modified_at": iso(time.time()),
    }
    code, detail = await deliver(
        state, account, Callback(url, headers, ("file.completed",)), sample
    )
    return Reply(
        {"status": "failed" if detail else "delivered", "response_code": code, "detail": detail}
    )


# --------------------------------------------------------------------------- routes

#: (path, endpoint name, methods, handler, auth, metered) for ``_app.Spec``; the handlers
#: authenticate themselves (Files-API-style 401), so ``auth`` is "none". Specific paths come
#: before ``/files/v1/{name}``.
# (path, endpoint, methods, handler, auth, metered[, body_limit]) -> server Spec
ROUTES: tuple[tuple[Any, ...], ...] = (
    ("/files/v1/uri", "/files/v1/uri", ("POST",), files_handler(handle_uri), "none", True),
    (
        "/files/v1",
        "/files/v1",
        ("POST",),
        files_handler(handle_upload),
        "none",
        True,
        "max_pdf_bytes",
    ),
    (
        "/files/v1/jobs",
        "/files/v1/jobs",
        ("POST",),
        files_handler(handle_jobs_new),
        "none",
        True,
        JOBS_BODY_LIMIT,
    ),
    ("/files/v1/jobs", "/files/v1/jobs", ("GET",), files_handler(handle_jobs_list), "none", False),
    (
        "/files/v1/jobs/{job_id}",
        "/files/v1/jobs/{job_id}",
        ("GET",),
        files_handler(handle_job_get),
        "none",
        False,
    ),
    (
        "/files/v1/jobs/{job_id}/files",
        "/files/v1/jobs/{job_id}/files",
        ("GET",),
        files_handler(handle_job_files),
        "none",
        False,
    ),
    (
        "/files/v1/jobs/{job_id}/files/{custom_id}",
        "/files/v1/jobs/{job_id}/files/{custom_id}",
        ("GET",),
        files_handler(handle_job_file),
        "none",
        False,
    ),
    (
        "/files/v1/jobs/{job_id}/finalize",
        "/files/v1/jobs/{job_id}/finalize",
        ("POST",),
        files_handler(handle_job_finalize),
        "none",
        False,
    ),
    (
        "/files/v1/onboarding/identities",
        "/files/v1/onboarding/identities",
        ("GET",),
        files_handler(handle_identities),
        "none",
        False,
    ),
    (
        "/files/v1/data-sources",
        "/files/v1/data-sources",
        ("POST",),
        files_handler(handle_ds_new),
        "none",
        False,
    ),
    (
        "/files/v1/data-sources",
        "/files/v1/data-sources",
        ("GET",),
        files_handler(handle_ds_list),
        "none",
        False,
    ),
    (
        "/files/v1/data-sources/{data_source_id}/test",
        "/files/v1/data-sources/{data_source_id}/test",
        ("POST",),
        files_handler(handle_ds_test),
        "none",
        False,
    ),
    (
        "/files/v1/data-sources/{data_source_id}",
        "/files/v1/data-sources/{data_source_id}",
        ("DELETE",),
        files_handler(handle_ds_delete),
        "none",
        False,
    ),
    (
        "/files/v1/webhook-config",
        "/files/v1/webhook-config",
        ("GET",),
        files_handler(handle_webhook_get),
        "none",
        False,
    ),
    (
        "/files/v1/webhook-config/test",
        "/files/v1/webhook-config/test",
        ("POST",),
        files_handler(handle_webhook_test),
        "none",
        False,
    ),
    (
        "/files/v1/{name}",
        "/files/v1/{file_id}",
        ("GET",),
        files_handler(handle_file_get),
        "none",
        False,
    ),
    (
        "/files/v1/{name}",
        "/files/v1/{file_id}",
        ("DELETE",),
        files_handler(handle_file_delete),
        "none",
        False,
    ),
)
