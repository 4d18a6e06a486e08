"""Document endpoints: v3/pdf (+ status, downloads, delete), v3/converter,
v3/pdf-results and v3/batch. Work runs in background tasks on the server loop."""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import httpx

from ._bodies import finish_row, recognize, shape_body, text_body, text_of
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
    parse_listing,
    read_upload,
    stored_request_args,
    validate_image_options,
)
from ._engines import EngineError
from ._store import (
    BatchJob,
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


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def _conversion(fmt: str, job: PdfJob, mmd: bytes) -> bytes | None:
    html_doc = (
        "<html><body>"
        + "".join(f"<p>{html.escape(p)}</p>" for p in mmd.decode().split("\n\n"))
        + "</body></html>"
    ).encode()
    tex = b"\\documentclass{article}\n\\begin{document}\n" + mmd + b"\n\\end{document}\n"
    produced = {
        "md": mmd,
        "html": html_doc,
        "tex.zip": _zip(f"{job.pdf_id}/{job.pdf_id}.tex", tex),
        "mmd.zip": _zip(f"{job.pdf_id}.mmd", mmd),
        "md.zip": _zip(f"{job.pdf_id}.md", mmd),
        "html.zip": _zip(f"{job.pdf_id}.html", html_doc),
    }
    return produced.get(fmt)


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
    state.usage.events.append((time.time(), "pdf-page", job.app_id, len(selected)))
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
            call.store.results[image_id] = row
        await anyio.sleep(0)
    job.outputs.update(_pdf_outputs(job))
    for fmt in job.conversion_formats:
        job.conversion_status[fmt] = {"status": "processing"}
    job.status, job.modified = "completed", time.time()
    if job.conversion_formats:
        await anyio.sleep(step)
        for fmt in job.conversion_formats:
            produced = _conversion(fmt, job, job.outputs["mmd"])
            if produced is None:
                job.conversion_status[fmt] = {
                    "status": "error",
                    "error_info": {
                        "id": "conversion_error",
                        "message": f"{fmt} conversion is not available on the local server",
                    },
                }
            else:
                job.outputs[fmt] = produced
                job.conversion_status[fmt] = {"status": "completed"}
        job.modified = time.time()


async def handle_pdf_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    if len(call.body) > cfg.max_pdf_bytes:
        return error(
            "sys_request_too_large", f"PDF upload is larger than {cfg.max_pdf_bytes} bytes"
        )
    parsed = await read_upload(call, cfg.max_pdf_bytes)
    if isinstance(parsed, Reply):
        return parsed
    data, options = parsed
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
    formats = options.get("conversion_formats") or {}
    if not isinstance(formats, dict):
        return error(
            "opts_value_out_of_range",
            "conversion_formats must be an object",
            name="conversion_formats",
            value=formats,
        )
    unknown = [f for f in formats if f not in (*CONVERSION_FORMATS, "mmd", "lines.json")]
    if unknown:
        return error(
            "opts_unknown_format",
            f"Unknown conversion format(s): {', '.join(unknown)}",
            formats=unknown,
        )
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
    pdf_id = state.new_request_id()
    call.request_id = pdf_id
    upload = call.request.headers.get("content-type", "").startswith("multipart/")
    job = PdfJob(
        pdf_id=pdf_id,
        app_id=call.app_id,
        created=time.time(),
        input_file=url if isinstance(url, str) and data is None else ("upload" if upload else ""),
        request_args=stored_request_args(options),
        conversion_formats=[f for f, on in formats.items() if on and f in CONVERSION_FORMATS],
        store_results=improve_mathpix(options),
        version=getattr(state.engine, "version", None),
    )
    job.modified = job.created
    call.store.pdfs[pdf_id] = job
    state.spawn(_process_pdf(state, call, job, data, url if data is None else None, options))
    return Reply({"pdf_id": pdf_id})


async def handle_pdf_stream(state: ServerState, call: Call) -> Reply:
    """Server-sent events, one per finished page: ``{"version", "text", "page_idx",
    "pdf_selected_len", "pdf_id"}``; needs ``"streaming": true`` at submission."""
    pdf_id = call.request.path_params["pdf_id"]
    job = call.store.pdfs.get(pdf_id)
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid")
    if not job.request_args.get("streaming"):
        return error(
            "pdf_streaming_not_enabled", 'Submit the PDF with "streaming": true to stream pages'
        )

    async def events() -> AsyncIterator[bytes]:
        sent = 0
        while True:
            while sent < len(job.pages):
                page = job.pages[sent]
                sent += 1
                message = {
                    "version": page.get("version", "local"),
                    "text": text_of(page, job.request_args),
                    "page_idx": sent,
                    "pdf_selected_len": job.num_pages,
                    "pdf_id": job.pdf_id,
                }
                yield f"data: {json.dumps(message)}\n\n".encode()
            if job.status in ("completed", "error"):
                return
            await anyio.sleep(0.02)

    return Reply(events(), media_type="text/event-stream")


def _split_pdf_name(name: str) -> tuple[str, str | None]:
    pdf_id, _, ext = name.partition(".")
    return pdf_id, ext or None


async def handle_pdf_get(state: ServerState, call: Call) -> Reply:
    pdf_id, ext = _split_pdf_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if ext is None:
        if job is None:
            return error("pdf_unknown_id", "PDF ID expired or isn't valid")
        return Reply(job.status_body())
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if ext == "tex":
        ext = "tex.zip"
    if job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF results were deleted", status=404)
    if ext in job.outputs:
        media = {
            "mmd": "text/plain; charset=utf-8",
            "md": "text/markdown; charset=utf-8",
            "html": "text/html; charset=utf-8",
        }.get(ext)
        if ext.endswith("json"):
            media = "application/json"
        return Reply(job.outputs[ext], media_type=media or "application/octet-stream")
    if job.status == "error":
        return Reply(job.status_body(), status=404)
    conversion = job.conversion_status.get(ext)
    if conversion is not None and conversion["status"] == "error":
        info = conversion["error_info"]
        return Reply(envelope(info["id"], info["message"]), status=404)
    if ext not in ("mmd", "lines.json", "lines.mmd.json") and ext not in job.conversion_formats:
        return error("file_missing", f"{ext} was not requested in conversion_formats", status=404)
    status = state.config.pdf_not_ready_status
    return Reply(job.status_body(), status=status, headers={"Retry-After": "1"})


async def handle_pdf_delete(state: ServerState, call: Call) -> Reply:
    pdf_id, _ = _split_pdf_name(call.request.path_params["name"])
    job = call.store.pdfs.get(pdf_id)
    if job is None:
        return error("pdf_unknown_id", "PDF ID expired or isn't valid", status=404)
    if job.status not in ("completed", "error") or job.deleted_at is not None:
        return error("pdf_unknown_id", "PDF is still processing or already deleted", status=404)
    job.deleted_at = time.time()
    job.outputs.clear()
    body = job.status_body()
    body.update(
        {
            "created_at": iso(job.created),
            "num_pages": job.num_pages,
            "num_pages_completed": job.num_pages_completed,
            "version": "local",
        }
    )
    return Reply(body)


async def handle_converter_get(state: ServerState, call: Call) -> Reply:
    job = call.store.pdfs.get(call.request.path_params["conversion_id"])
    if job is None or not job.conversion_status or job.deleted_at is not None:
        return error("cnv_unknown_id", "Conversion ID not found (yet)")
    statuses = [s["status"] for s in job.conversion_status.values()]
    overall = "completed" if all(s != "processing" for s in statuses) else "processing"
    return Reply({"status": overall, "conversion_status": job.conversion_status})


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
        fetched = await fetch_src(state, src, limit=state.config.max_download_bytes)
        if isinstance(fetched, Reply):
            job.results[key] = {"request_id": request_id, **fetched.body}
            return
        started = time.time()
        rec = await recognize(state, fetched, options)
        body = shape_body(kind, rec, options, request_id)
        job.results[key] = body
        if store:
            row = StoredResult(
                image_id=request_id,
                endpoint="/v3/batch",
                created=started,
                app_id=job.app_id,
                request_args=stored_request_args(options),
                tags=tuple(options.get("tags") or ()),
            )
            finish_row(call, row, body, rec, started, 0.0)
            call.store.results[request_id] = row

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
    if len(call.body) > cfg.max_body_bytes:
        return error(
            "sys_request_too_large", f"Request body is larger than {cfg.max_body_bytes} bytes"
        )
    try:
        options = json.loads(call.body) if call.body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error("json_syntax", "Request body is not valid JSON")
    if not isinstance(options, dict):
        return error("json_syntax", "Request body must be a JSON object")
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
