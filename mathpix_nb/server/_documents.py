"""Document endpoints: v3/pdf and v3/pdf-file (+ status, downloads, stream, delete),
v3/converter (+ status, downloads, delete, converter-results), v3/pdf-results and v3/batch.
Work runs in background tasks on the server loop; conversions in worker threads.

Downloads of a format that was not asked for in ``conversion_formats`` / ``formats`` are
made on demand (``on_demand_conversions=True``), as the real API evidently does: Mathpix's
CLI and SDKs fetch ``.docx``, ``.md`` or ``.tex`` without asking first."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import httpx

from ._bodies import finish_row, recognize, shape_body, text_body, text_of
from ._convert import FORMATS, MEDIA_TYPES, convert
from ._core import (
    CONVERSION_FORMATS,
    Call,
    Reply,
    ServerState,
    charge_images,
    envelope,
    error,
    fetch_src,
    improve_mathpix,
    parse_json_object,
    parse_listing,
    read_upload,
    stored_request_args,
    validate_image_options,
)
from ._engines import EngineError
from ._store import (
    BatchJob,
    ConversionJob,
    Conversions,
    PdfJob,
    StoredResult,
    iso,
)

logger = logging.getLogger("mathpix_nb.server")


def _pdf_outputs(job: PdfJob) -> dict[str, bytes]:
    texts = [text_of(page, job.request_args) for page in job.pages]
    mmd = "\n\n".join(texts).encode()
    lines_json = {
        "pages": [
            {
                "image_id": f"{job.pdf_id}-{page.get('page', n)}",
                "page": page.get("page", n),
                "page_width": page.get("image_width"),
                "page_height": page.get("image_height"),
                "lines": [
                    {
                        "id": f"{job.pdf_id[-8:]}{n:03d}{i:03d}",
                        "type": "text",
                        "line": i + 1,
                        "column": 0,
                        "font_size": 12,
                        "text": li["text"],
                        "text_display": li["text"],
                        "conversion_output": True,
                        "is_printed": True,
                        "is_handwritten": False,
                        "region": {
                            "top_left_x": min(p[0] for p in li["cnt"]),
                            "top_left_y": min(p[1] for p in li["cnt"]),
                            "width": max(p[0] for p in li["cnt"]) - min(p[0] for p in li["cnt"]),
                            "height": max(p[1] for p in li["cnt"]) - min(p[1] for p in li["cnt"]),
                        },
                        "cnt": li["cnt"],
                        "confidence": li["confidence"],
                        "confidence_rate": li["confidence"],
                    }
                    for i, li in enumerate(page.get("lines", []))
                ],
            }
            for n, page in enumerate(job.pages, start=1)
        ]
    }
    encoded = json.dumps(lines_json).encode()
    return {"mmd": mmd, "lines.json": encoded, "lines.mmd.json": encoded}


_RANGE = re.compile(r"^(-?\d+)(?:\s*-\s*(-?\d+))?$")


def valid_page_ranges(spec: str) -> bool:
    """``"2,4-6"``, ``"2 - -2"`` (2nd to next-to-last): comma-separated pages or ranges."""
    return all(_RANGE.match(part.strip()) for part in spec.split(",")) if spec.strip() else True


def select_pages(spec: str, count: int) -> list[int]:
    """1-based page numbers a ``page_ranges`` value selects from ``count`` pages."""
    if not spec.strip():
        return list(range(1, count + 1))

    def resolve(n: int) -> int:
        return n if n > 0 else count + 1 + n

    pages: list[int] = []
    for part in spec.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            continue
        first = resolve(int(match.group(1)))
        last = resolve(int(match.group(2))) if match.group(2) else first
        for page in range(max(1, first), min(count, last) + 1):
            if page not in pages:
                pages.append(page)
    return pages


# --------------------------------------------------------------------------- conversions


async def make_output(state: ServerState, doc: Conversions, fmt: str, mmd: str, name: str) -> None:
    """Convert ``mmd`` to ``fmt`` in a worker thread; record the bytes, the converter and
    the format's status (``completed``, or ``error`` with ``conversion_error``)."""
    cfg = state.config
    if fmt in cfg.failing_conversions:  # an injected fault, for clients' error paths
        doc.conversion_status[fmt] = {
            "status": "error",
            "error_info": {"id": "conversion_error", "message": f"{fmt} conversion failed"},
        }
        return
    try:
        made = await anyio.to_thread.run_sync(
            lambda: convert(
                fmt, mmd, name, backend=cfg.converter_backend, timeout=cfg.converter_timeout
            )
        )
    except Exception as exc:  # a writer bug must not take the job down
        logger.exception("conversion of %s to %s failed", name, fmt)
        doc.conversion_status[fmt] = {
            "status": "error",
            "error_info": {"id": "conversion_error", "message": f"{fmt}: {exc}"},
        }
        return
    doc.outputs[fmt] = made.data
    doc.converters[fmt] = made.converter
    doc.conversion_status[fmt] = {"status": "completed", "converter": made.converter}


async def _run_conversions(
    state: ServerState, doc: Conversions, formats: list[str], mmd: str, name: str
) -> None:
    for fmt in formats:
        doc.conversion_status[fmt] = {"status": "processing"}
    if not formats:
        return
    await anyio.sleep(state.config.pdf_step_delay)
    for fmt in formats:
        await make_output(state, doc, fmt, mmd, name)


def _conversion_formats(raw: Any, field: str) -> list[str] | Reply:
    """The formats switched on in ``{"docx": true, ...}`` (``mmd`` / ``lines.json`` are
    always made and accepted as no-ops), or the error reply."""
    formats = raw or {}
    if not isinstance(formats, dict):
        return error(
            "opts_value_out_of_range", f"{field} must be an object", name=field, value=formats
        )
    unknown = [f for f in formats if f not in (*CONVERSION_FORMATS, "mmd", "lines.json")]
    if unknown:
        return error(
            "opts_unknown_format",
            f"Unknown conversion format(s): {', '.join(map(str, unknown))}",
            formats=unknown,
        )
    return [f for f, on in formats.items() if on and f in CONVERSION_FORMATS]


def _download_name(name: str) -> tuple[str, str | None]:
    """``2024_..._abc.tex.zip`` -> (id, ``tex.zip``); ``.tex`` means ``tex.zip``."""
    doc_id, _, ext = name.partition(".")
    if ext == "tex":
        ext = "tex.zip"
    return doc_id, ext or None


def _serve(doc: Conversions, ext: str) -> Reply:
    reply = Reply(doc.outputs[ext], media_type=MEDIA_TYPES.get(ext, "application/octet-stream"))
    converter = doc.converters.get(ext)
    if converter:
        reply.headers["X-Mathpix-Converter"] = converter
    return reply


def _not_ready(state: ServerState, body: dict[str, Any]) -> Reply:
    return Reply(body, status=state.config.pdf_not_ready_status, headers={"Retry-After": "1"})


async def _download(
    state: ServerState,
    doc: Conversions,
    ext: str,
    mmd: bytes | None,
    name: str,
    status_body: dict[str, Any],
) -> Reply:
    """A finished document's output ``ext``: made already, being made, failed, or made now."""
    if ext in doc.outputs:
        return _serve(doc, ext)
    conversion = doc.conversion_status.get(ext)
    if conversion is not None and conversion["status"] == "processing":
        # clients that download right after "completed" (LangChain's loader) get the file
        deadline = time.monotonic() + state.config.conversion_wait
        while doc.conversion_status[ext]["status"] == "processing":
            if time.monotonic() >= deadline:
                return _not_ready(state, status_body)
            await anyio.sleep(0.02)
        return await _download(state, doc, ext, mmd, name, status_body)
    if conversion is not None and conversion["status"] == "error":
        info = conversion["error_info"]
        return Reply(envelope(info["id"], info["message"]), status=404)
    if ext not in FORMATS:
        return error(
            "opts_unknown_format",
            f"Unknown download format {ext!r}; use one of mmd, lines.json, {', '.join(FORMATS)}",
            status=404,
            formats=[ext],
        )
    if not state.config.on_demand_conversions or mmd is None:
        return error("file_missing", f"{ext} was not requested in conversion_formats", status=404)
    await make_output(state, doc, ext, mmd.decode("utf-8", "replace"), name)
    if ext in doc.outputs:
        return _serve(doc, ext)
    info = doc.conversion_status[ext]["error_info"]
    return Reply(envelope(info["id"], info["message"]), status=404)


# --------------------------------------------------------------------------- v3/pdf


async def _process_pdf(
    state: ServerState,
    call: Call,
    job: PdfJob,
    data: bytes | None,
    url: str | None,
    options: dict[str, Any],
) -> None:
    step = state.config.pdf_step_delay

    def fail(error_id: str, message: str) -> None:
        job.status = "error"
        job.error_info = {"id": error_id, "message": message}
        job.modified = time.time()

    await anyio.sleep(step)
    if data is None and url is not None:
        fetched = await fetch_src(state, url, limit=state.config.max_pdf_bytes, what="pdf")
        if isinstance(fetched, Reply):
            info = fetched.body["error_info"]
            fail(info["id"], info["message"])
            return
        data = fetched
    assert data is not None
    job.status, job.modified = "loaded", time.time()
    await anyio.sleep(step)
    try:
        if state.engine.blocking:
            count = await anyio.to_thread.run_sync(state.engine.pdf_page_count, data)
        else:
            count = state.engine.pdf_page_count(data)
    except EngineError as exc:
        fail(exc.error_id, exc.message)
        return
    selected = select_pages(str(options.get("page_ranges") or ""), count)
    quota = state.config.monthly_page_quota
    if quota is not None and state.usage.pages + len(selected) > quota:
        fail("http_max_requests", "Monthly page limit exceeded")
        return
    state.usage.pages += len(selected)
    state.usage.record(time.time(), "pdf-page", job.app_id, len(selected))
    job.num_pages, job.status, job.modified = len(selected), "split", time.time()
    for done, page in enumerate(selected, start=1):
        try:
            rec = await state.run_engine(
                state.engine.recognize_pdf_page,
                data,
                page,
                options,
                upload_bytes=len(data) // max(count, 1),
            )
        except EngineError as exc:
            fail(exc.error_id, exc.message)
            return
        job.pages.append({**rec, "page": page})
        job.num_pages_completed, job.modified = done, time.time()
        if job.store_results:
            image_id = f"{job.pdf_id}-{page}"
            if image_id not in call.store.results:
                body = text_body(rec, {}, image_id)
                row = StoredResult(
                    image_id=image_id,
                    endpoint="/v3/pdf",
                    created=time.time(),
                    app_id=job.app_id,
                    request_args={},
                    tags=(),
                    pdf_id=job.pdf_id,
                )
                finish_row(call, row, body, rec, job.created, 0.0)
                call.store.results.add(row)
        await anyio.sleep(0)
    job.outputs.update(_pdf_outputs(job))
    for fmt in job.conversion_formats:
        job.conversion_status[fmt] = {"status": "processing"}
    job.status, job.modified = "completed", time.time()
    await _run_conversions(
        state, job, job.conversion_formats, job.outputs["mmd"].decode(), job.pdf_id
    )
    job.modified = time.time()


async def handle_pdf_new(state: ServerState, call: Call) -> Reply:
    """``POST v3/pdf`` and ``POST v3/pdf-file``: multipart ``file`` (+ optional
    ``options_json``) or JSON ``{"url": ...}``."""
    cfg = state.config
    parsed = await read_upload(call)
    if isinstance(parsed, Reply):
        return parsed
    data, options = parsed.data, parsed.options
    url = options.get("url")
    if data is None and not (isinstance(url, str) and url):
        return error("pdf_missing", "Missing PDF: send a 'file' part or a 'url' field")
    ranges = options.get("page_ranges")
    if ranges is not None and (not isinstance(ranges, str) or not valid_page_ranges(ranges)):
        return error(
            "opts_value_out_of_range",
            'page_ranges must look like "2,4-6" or "2 - -2"',
            name="page_ranges",
            value=ranges,
        )
    formats = _conversion_formats(options.get("conversion_formats"), "conversion_formats")
    if isinstance(formats, Reply):
        return formats
    quota = cfg.monthly_page_quota
    if quota is not None and state.usage.pages >= quota:
        return error(
            "http_max_requests",
            "Too many requests",
            status=429,
            limit_name="page_monthly_limit",
            limit_value=quota,
            count=state.usage.pages + 1,
        )
    if data is not None:
        call.image_sha256 = hashlib.sha256(data).hexdigest()
        input_file = parsed.filename or "file"
    else:
        input_file = str(url)
    pdf_id = state.new_request_id()
    call.request_id = pdf_id
    job = PdfJob(
        pdf_id=pdf_id,
        app_id=call.app_id,
        created=time.time(),
        input_file=input_file,
        request_args=stored_request_args(options),
        conversion_formats=formats,
        store_results=improve_mathpix(options),
        version=getattr(state.engine, "version", None),
    )
    job.modified = job.created
    call.store.pdfs[pdf_id] = job
    state.spawn(_process_pdf(state, call, job, data, url if data is None else None, options))
    return Reply({"pdf_id": pdf_id})


def _stream_sse(state: ServerState, call: Call) -> bool:
    mode = state.config.pdf_stream_format
    if mode != "auto":
        return mode == "sse"
    return "text/event-stream" in call.request.headers.get("accept", "").lower()


async def handle_pdf_stream(state: ServerState, call: Call) -> Reply:
    """One message per finished page: ``{"version", "text", "page_idx",
    "pdf_selected_len", "pdf_id"}``; needs ``"streaming": true`` at submission.

    Framing by the ``Accept`` header (``pdf_stream_format="auto"``): ``text/event-stream``
    (browsers' EventSource, SSE clients) gets server-sent events ``data: {json}``;
    anything else gets one bare JSON object per line (``application/x-ndjson``), which is
    what a line-reading client such as ``requests``' ``iter_lines`` expects."""
    pdf_id = call.request.path_params["pdf_id"]
    job = call.store.pdfs.get(pdf_id)
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid")
    if not job.request_args.get("streaming"):
        return error(
            "pdf_streaming_not_enabled", 'Submit the PDF with "streaming": true to stream pages'
        )
    sse = _stream_sse(state, call)

    async def events() -> AsyncIterator[bytes]:
        sent = 0
        while True:
            while sent < len(job.pages):
                page = job.pages[sent]
                sent += 1
                message = json.dumps(
                    {
                        "version": page.get("version", "local"),
                        "text": text_of(page, job.request_args),
                        "page_idx": sent,
                        "pdf_selected_len": job.num_pages,
                        "pdf_id": job.pdf_id,
                    }
                )
                yield (f"data: {message}\n\n" if sse else f"{message}\n").encode()
            if job.status in ("completed", "error"):
                return
            await anyio.sleep(0.02)

    media = "text/event-stream" if sse else "application/x-ndjson"
    return Reply(events(), media_type=media, headers={"Cache-Control": "no-cache"})


async def handle_pdf_get(state: ServerState, call: Call) -> Reply:
    pdf_id, ext = _download_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if ext is None:
        if job is None:
            return error("pdf_unknown_id", "PDF ID expired or isn't valid")
        return Reply(job.status_body())
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF results were deleted", status=404)
    if ext in job.outputs:
        return _serve(job, ext)
    if job.status == "error":
        return Reply(job.status_body(), status=404)
    if job.status != "completed":
        return _not_ready(state, job.status_body())
    return await _download(state, job, ext, job.outputs.get("mmd"), job.pdf_id, job.status_body())


async def handle_pdf_delete(state: ServerState, call: Call) -> Reply:
    pdf_id, _ = _download_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if job.status not in ("completed", "error") or job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF is still processing or already deleted", status=404)
    job.deleted_at = time.time()
    job.outputs.clear()
    body = job.status_body()  # the same fields as GET v3/pdf/{id}, version included
    body.update(
        {
            "created_at": iso(job.created),
            "num_pages": job.num_pages,
            "num_pages_completed": job.num_pages_completed,
        }
    )
    return Reply(body)


async def handle_pdf_results(state: ServerState, call: Call) -> Reply:
    params = call.request.query_params
    listing = parse_listing(params, 1000)
    if isinstance(listing, Reply):
        return listing
    page, per_page, lo, hi = listing
    jobs = [
        j
        for j in call.store.pdfs.values()
        if lo <= j.created < hi
        and (not params.get("app_id") or j.app_id == params["app_id"])
        and (not params.get("pdf_id") or j.pdf_id == params["pdf_id"])
    ]
    jobs.sort(key=lambda j: j.created, reverse=state.config.results_order == "newest")
    return Reply(
        {
            "pdfs": [
                {
                    "id": j.pdf_id,
                    "input_file": j.input_file,
                    "status": j.status,
                    "created_at": iso(j.created),
                    "modified_at": iso(j.modified),
                    "num_pages": j.num_pages,
                    "num_pages_completed": j.num_pages_completed,
                    "request_args": j.request_args,
                }
                for j in jobs[(page - 1) * per_page : page * per_page]
            ]
        }
    )


# --------------------------------------------------------------------------- v3/converter


async def handle_converter_new(state: ServerState, call: Call) -> Reply:
    """``POST v3/converter`` ``{"mmd": "...", "formats": {"docx": true, ...},
    "conversion_options"?: {...}}`` -> ``{"conversion_id"}``."""
    options = parse_json_object(call.body, state)
    if isinstance(options, Reply):
        return options
    mmd = options.get("mmd")
    if not isinstance(mmd, str):
        return error(
            "opts_value_out_of_range",
            "mmd (the Mathpix Markdown to convert) must be a string",
            name="mmd",
            value=None if mmd is None else type(mmd).__name__,
        )
    formats = _conversion_formats(options.get("formats"), "formats")
    if isinstance(formats, Reply):
        return formats
    conversion_options = options.get("conversion_options")
    if conversion_options is not None and not isinstance(conversion_options, dict):
        return error(
            "opts_value_out_of_range",
            "conversion_options must be an object keyed by format",
            name="conversion_options",
            value=conversion_options,
        )
    conversion_id = state.new_request_id()
    call.request_id = conversion_id
    now = time.time()
    job = ConversionJob(
        conversion_id=conversion_id,
        app_id=call.app_id,
        created=now,
        modified=now,
        mmd=mmd,
        request_args={k: v for k, v in options.items() if k != "mmd"},
        conversion_formats=formats,
    )
    job.outputs["mmd"] = mmd.encode()
    for fmt in formats:
        job.conversion_status[fmt] = {"status": "processing"}
    call.store.conversions[conversion_id] = job

    async def work() -> None:
        await _run_conversions(state, job, formats, mmd, conversion_id)
        job.modified = time.time()

    state.spawn(work())
    return Reply({"conversion_id": conversion_id})


def _converter_status(job: ConversionJob) -> dict[str, Any]:
    return {"status": job.status, "conversion_status": job.conversion_status}


async def handle_converter_get(state: ServerState, call: Call) -> Reply:
    """``GET v3/converter/{id}``: the status of a v3/converter job or of a PDF's
    conversions; ``GET v3/converter/{id}.{ext}``: a v3/converter job's output."""
    doc_id, ext = _download_name(call.request.path_params["name"])
    job = call.store.conversions.get(doc_id)
    if ext is None:
        if job is not None and job.deleted_at is None:
            return Reply(_converter_status(job))
        pdf = call.store.pdfs.get(doc_id)
        if pdf is None or not pdf.conversion_status or pdf.deleted_at is not None:
            return error("cnv_unknown_id", "Conversion ID not found (yet)")
        statuses = [s["status"] for s in pdf.conversion_status.values()]
        overall = "completed" if all(s != "processing" for s in statuses) else "processing"
        return Reply({"status": overall, "conversion_status": pdf.conversion_status})
    if job is None or job.deleted_at is not None:
        return error("cnv_unknown_id", "Conversion ID not found", status=404)
    return await _download(
        state, job, ext, job.mmd.encode(), job.conversion_id, _converter_status(job)
    )


async def handle_converter_delete(state: ServerState, call: Call) -> Reply:
    """``DELETE v3/converter/{id}``: forget the outputs; answers the final status."""
    doc_id, _ = _download_name(call.request.path_params["name"])
    job = call.store.conversions.get(doc_id)
    if job is None or job.deleted_at is not None:
        return error("cnv_unknown_id", "Conversion ID not found", status=404)
    job.deleted_at = time.time()
    job.outputs.clear()
    body = {"conversion_id": job.conversion_id, **_converter_status(job)}
    body["deleted_at"] = iso(job.deleted_at)
    return Reply(body)


async def handle_converter_results(state: ServerState, call: Call) -> Reply:
    """``GET v3/converter-results`` (in mpxpy; not in the docs): past conversions."""
    params = call.request.query_params
    listing = parse_listing(params, 100)
    if isinstance(listing, Reply):
        return listing
    page, per_page, lo, hi = listing
    jobs = [
        j
        for j in call.store.conversions.values()
        if lo <= j.created < hi and (not params.get("app_id") or j.app_id == params["app_id"])
    ]
    jobs.sort(key=lambda j: j.created, reverse=state.config.results_order == "newest")
    return Reply(
        {
            "documents": [
                {
                    "id": j.conversion_id,
                    "input_file": "mmd",
                    "status": j.status,
                    "created_at": iso(j.created),
                    "modified_at": iso(j.modified),
                    "request_args": j.request_args,
                }
                for j in jobs[(page - 1) * per_page : page * per_page]
            ]
        }
    )


EXPORT_FORMATS = {"docx": "docx", "latex": "tex.zip", "pdf/html": "pdf", "pdf/latex": "latex.pdf"}


async def handle_export(state: ServerState, call: Call) -> Reply:
    """``POST v1/export/{docx,latex,pdf/html,pdf/latex}`` ``{"mmd", "fileName"?}``: the
    older synchronous export Mathpix's JS CLI (``mpx``) calls with ``app_key`` alone; the
    answer is the file itself (docx, a LaTeX zip, or a PDF)."""
    kind = call.request.path_params["kind"]
    fmt = EXPORT_FORMATS.get(kind)
    if fmt is None:
        return error(
            "opts_unknown_format",
            f"Unknown export {kind!r}; use {', '.join(EXPORT_FORMATS)}",
            status=404,
            formats=[kind],
        )
    options = parse_json_object(call.body, state)
    if isinstance(options, Reply):
        return options
    mmd = options.get("mmd")
    if not isinstance(mmd, str):
        return error("opts_value_out_of_range", "mmd must be a string", name="mmd", value=None)
    raw_name = options.get("fileName")
    name = (
        re.sub(r"[^\w.-]+", "_", raw_name) if isinstance(raw_name, str) and raw_name else "export"
    )
    doc = Conversions()
    await make_output(state, doc, fmt, mmd, name)
    if fmt not in doc.outputs:
        info = doc.conversion_status[fmt]["error_info"]
        return Reply(envelope(info["id"], info["message"]), status=500)
    reply = _serve(doc, fmt)
    ext = {"tex.zip": "zip", "latex.pdf": "pdf"}.get(fmt, fmt)
    reply.headers["Content-Disposition"] = f'attachment; filename="{name}.{ext}"'
    return reply


# --------------------------------------------------------------------------- batch


async def _process_batch(
    state: ServerState,
    call: Call,
    job: BatchJob,
    items: dict[str, tuple[str, dict[str, Any]]],
    kind: str,
    store: bool,
) -> None:
    async def one(key: str, src: str, options: dict[str, Any]) -> None:
        request_id = state.new_request_id()
        started = time.time()
        row: StoredResult | None = None
        if store:  # stored at once, like v3/text: the index stays in arrival order
            row = StoredResult(
                image_id=request_id,
                endpoint="/v3/batch",
                created=started,
                app_id=job.app_id,
                request_args=stored_request_args(options),
                tags=tuple(options.get("tags") or ()),
                visible_at=float("inf"),
            )
            call.store.results.add(row)
        fetched = await fetch_src(state, src, limit=state.config.max_download_bytes)
        if isinstance(fetched, Reply):
            body = {"request_id": request_id, **fetched.body}
            job.results[key] = body
            if row is not None:
                rec: dict[str, Any] | EngineError = EngineError(
                    body["error_info"]["id"], body["error_info"]["message"]
                )
                finish_row(call, row, body, rec, started, 0.0)
            return
        rec = await recognize(state, fetched, options)
        body = shape_body(kind, rec, options, request_id)
        job.results[key] = body
        if row is not None:
            finish_row(call, row, body, rec, started, 0.0)

    async with anyio.create_task_group() as tg:
        for key, (src, options) in items.items():
            tg.start_soon(one, key, src, options)
    if job.callback is not None:
        await _deliver_callback(state, job)


async def _deliver_callback(state: ServerState, job: BatchJob) -> None:
    """POST the finished batch to ``callback.post``, best effort (Mathpix does not guarantee
    delivery either). Payload: ``{"reply": {"batch_id", **callback.reply}, "result": {...},
    **callback.body}`` (the shape third parties describe; not in Mathpix's docs)."""
    callback = job.callback or {}
    payload: dict[str, Any] = dict(callback.get("body") or {})
    payload["reply"] = {"batch_id": str(job.batch_id), **(callback.get("reply") or {})}
    payload["result"] = dict(job.results)
    headers = {str(k): str(v) for k, v in (callback.get("headers") or {}).items()}
    try:
        await state.http.post(str(callback["post"]), json=payload, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        logger.warning("batch %s callback failed: %s", job.batch_id, exc.__class__.__name__)


async def handle_batch_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    options = parse_json_object(call.body, state)
    if isinstance(options, Reply):
        return options
    urls = options.get("urls")
    if not isinstance(urls, dict) or not urls:
        return error("image_missing", "urls must be a non-empty object of key -> URL")
    behavior = options.get("ocr_behavior", "latex")
    if behavior not in ("latex", "text"):
        return error(
            "opts_value_out_of_range",
            'ocr_behavior must be "latex" or "text"',
            name="ocr_behavior",
            value=behavior,
        )
    base = {k: v for k, v in options.items() if k not in ("urls", "ocr_behavior", "callback")}
    invalid = validate_image_options(base, behavior)
    if invalid is not None:
        return invalid
    callback = options.get("callback")
    if callback is not None and (
        not isinstance(callback, dict)
        or not isinstance(callback.get("post"), str)
        or "batch_id" in (callback.get("reply") or {})
    ):
        return error("opts_bad_callback", "callback must be an object with a 'post' URL")
    items: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, value in urls.items():
        if isinstance(value, str):
            items[key] = (value, dict(base))
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            per = {k: v for k, v in value.items() if k != "url"}
            items[key] = (value["url"], {**base, **per})
        else:
            return error("image_missing", f"urls[{key!r}] must be a URL or an object with 'url'")
    call.tags = tuple(base.get("tags") or ())
    over = charge_images(state, len(items), "image", call.app_id)
    if over is not None:
        return over
    job = BatchJob(
        batch_id=call.store.next_batch_id(), app_id=call.app_id, keys=list(items), callback=callback
    )
    call.store.batches[job.batch_id] = job
    state.spawn(_process_batch(state, call, job, items, behavior, improve_mathpix(base)))
    batch_id: int | str = job.batch_id if cfg.batch_id_type == "int" else str(job.batch_id)
    return Reply({"batch_id": batch_id})


async def handle_batch_get(state: ServerState, call: Call) -> Reply:
    raw = call.request.path_params["batch_id"]
    job = call.store.batches.get(int(raw)) if raw.isdigit() else None
    if job is None:
        return error("batch_unknown_id", "Unknown batch id", batch_id=raw)
    body: dict[str, Any] = {"keys": job.keys, "results": dict(job.results)}
    if job.callback is not None:
        body["callback"] = job.callback
    return Reply(body)


# --------------------------------------------------------------------------- hook: Files API


async def run_document(
    state: ServerState, call: Call, job: PdfJob, data: bytes, options: dict[str, Any]
) -> None:
    """The v3/pdf pipeline for one document already in memory: fills ``job``'s status,
    pages, outputs and conversion status (used by the Files API, ``_files.py``)."""
    await _process_pdf(state, call, job, data, None, options)
