"""The bulk OCR engine: stream rows -> dedupe/journal -> submit async v3/text -> poll by tag.

Pandas-free: it takes an iterable of cell values and returns one :data:`RowResult` per value,
in order. For each distinct job (image content + options + crop + region):

1. resolve the cell (NaN/None, path, URL, bytes, PIL/numpy) and hash its content;
2. ask the journal: done/failed -> cached; submitted -> poll for it; ``submitting`` with an
   unknown fate (a crash or a dropped connection after the upload) -> look it up by its row
   tag first, and send it again only if the API has never seen it;
3. not in the journal: ask the API's own record. Every job carries its dataset's tag
   ``mnb-ds-<hash of the dataset name>``; the first such row of a run reads the dataset's
   jobs from ``v3/ocr-results`` (only those newer than the journal's last listing, one
   request per ``per_page`` jobs) into the journal's cache, so a lost, deleted or foreign
   journal costs a listing, never a second payment;
4. otherwise claim it in the journal (durably), prepare the image (client core) and POST it
   with ``async: true`` and tags ``mnb-run-<run>``, ``mnb-batch-<run>-<n>``, ``mnb-row-<key>``,
   ``mnb-ds-<dataset>``;
5. one poller reads ``v3/ocr-results`` by run + batch tag with large pages (one request
   covers up to ``per_page`` images) and matches items to jobs by request id.

At most ``concurrency`` images are being read/prepared/uploaded at once, so memory holds the
results plus a bounded window of images, never all of them. Where async is not allowed (app
token auth, ``improve_mathpix=False``) jobs go through synchronous v3/text concurrently.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import random
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import anyio.to_thread

from .._exceptions import ImageError
from .._image_io import read_file
from .._images import ImagePrep, PreparedImage, prep_threads, prepare_image
from .._journal import Journal, JournalEntry, RemoteJob, process_alive
from .._options import OptionError
from .._protocol import prep_option
from . import _api

log = logging.getLogger("mathpix_nb.bulk")


class RowResult(NamedTuple):
    """One output row: the result columns of one input cell."""

    text: str | None = None
    latex_styled: str | None = None
    confidence: float | None = None
    request_id: str | None = None
    error: str | None = None
    html: str | None = None  # with formats=[..., "html"]
    data: str | None = None  # with formats=[..., "data"]: the data list as JSON text


_EMPTY = RowResult()
# Unreachable-server outcomes (after the client's own retries), with no success between
# them, that stop the whole run: the server is down, so every other row would wait too.
_BREAKER_TRIPS = 2

_RETRYABLE_RESULT_IDS = {"sys_exception", "connection_closed"}


@dataclass
class BulkSummary:
    """What a bulk run did.

    ``done``: rows answered by the API in this run; ``cached``: rows answered from the journal
    (an earlier run) or by an identical image earlier in this run; ``failed``: rows with an
    error; ``retried``: requests sent again after a transient failure; ``submitted``: images
    sent; ``recovered``: submissions found again by tag instead of being resent; ``listed``:
    jobs of the dataset read from v3/ocr-results because the journal did not know them.
    """

    rows: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    submitted: int = 0
    duplicates: int = 0
    recovered: int = 0
    listed: int = 0
    pending: int = 0
    requests: int = 0
    mode: str = "async"
    run_id: str = ""
    elapsed: float = 0.0

    def __str__(self) -> str:
        extra = f"; {self.pending} still pending (rerun to collect them)" if self.pending else ""
        return (
            f"mathpix OCR ({self.mode}): {self.rows} rows - {self.done} done, {self.cached} "
            f"cached, {self.failed} failed, {self.retried} retried; {self.submitted} images "
            f"sent, {self.requests} requests, {self.elapsed:.1f}s{extra}"
        )


@dataclass
class BulkConfig:
    """Tuning knobs of a run; the defaults suit the real API."""

    concurrency: int = 8  # images being read/prepared/uploaded at once
    poll_interval: float = 1.0  # seconds between v3/ocr-results polls
    timeout: float | None = None  # deadline for the whole run, seconds (None: none)
    per_page: int = 1000  # v3/ocr-results page size (the API's maximum)
    batch_size: int = 1000  # images per batch tag, so one page covers a batch
    unknown_grace: float = 10.0  # how long a lost submission is looked up by tag
    max_attempts: int = 6  # sends of one image in one run
    fallback: bool | None = None  # None: decide from the auth mode / improve_mathpix
    recover_by_tag: bool = False  # look a job the journal lacks up by its row tag first
    dataset: str = "default"  # jobs of one dataset recover (and dedupe) against each other
    recover: bool = True  # read the dataset's jobs from v3/ocr-results when the journal lacks one

    def __post_init__(self) -> None:
        # checked when the run is set up: a wrong knob is one error before any row is read
        for name in ("concurrency", "per_page", "batch_size", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name}={value!r} must be a whole number >= 1 (e.g. {name}=8).")
        for name, allow_none, allow_zero in (
            ("poll_interval", False, False),
            ("timeout", True, False),
            ("unknown_grace", False, True),
        ):
            value = getattr(self, name)
            if value is None and allow_none:
                continue
            ok = not isinstance(value, bool) and isinstance(value, int | float)
            if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                none = " or None" if allow_none else ""
                raise OptionError(
                    f"{name}={value!r} must be a finite number of seconds > 0{none} "
                    f"(e.g. {name}=60)."
                )
        if (
            not isinstance(self.dataset, str)
            or not self.dataset.strip()
            or len(self.dataset) > 200
            or not self.dataset.isprintable()
        ):
            raise OptionError(
                f"dataset={self.dataset!r} must be a non-empty printable name of at most 200 "
                "characters (e.g. dataset='invoices-2026'); jobs of one dataset recover and "
                "dedupe against each other"
            )
        for name in ("fallback", "recover_by_tag", "recover"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and name == "fallback")):
                raise OptionError(f"{name}={value!r} must be True or False.")


class _Job:
    __slots__ = (
        "attempts",
        "batch_tag",
        "key",
        "kind",
        "positions",
        "request_id",
        "result",
        "returned_at",
        "row_tag",
        "run_tag",
        "sent_at",
        "source",
    )

    def __init__(self, key: str, kind: str, source: str) -> None:
        self.key = key
        self.kind = kind  # file | url | bytes | object
        self.source = source  # names the input in messages
        self.positions: list[int] = []
        self.request_id: str | None = None
        self.run_tag: str | None = None
        self.batch_tag: str | None = None
        self.row_tag: str | None = None
        self.result: RowResult | None = None
        self.attempts = 0
        # local monotonic times around the submit call (incremental polling, see _Group)
        self.sent_at = -math.inf
        self.returned_at = math.inf


@dataclass
class _Cell:
    kind: str  # missing | file | url | bytes | object | bad
    source: str
    payload: Any = None
    error: str | None = None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in {"NAType", "NaTType"}  # pandas NA/NaT, without pandas


def _classify(value: Any) -> _Cell:
    if _is_missing(value):
        return _Cell(
            "missing",
            repr(value),
            error=(
                f"missing_value: the cell is empty ({value!r}); put an image path or URL in it, "
                "or drop the row"
            ),
        )
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return _Cell(
                "missing",
                repr(value),
                error=(
                    "missing_value: the cell is an empty string; put an image path or URL in it, "
                    "or drop the row"
                ),
            )
        low = s[:8].lower()
        if low.startswith(("http://", "https://")):
            return _Cell("url", s, payload=s)
        if low.startswith("data:"):
            return _Cell("url", s[:30] + "...", payload=s)
        return _Cell("file", s, payload=Path(os.path.expanduser(s)))
    if isinstance(value, os.PathLike):
        p = Path(os.fspath(value)).expanduser()
        return _Cell("file", str(p), payload=p)
    if isinstance(value, bytes | bytearray | memoryview):
        return _Cell("bytes", f"<{len(value)} bytes>", payload=bytes(value))
    if type(value).__module__.split(".")[0] in {"PIL", "numpy"}:
        return _Cell("object", f"<{type(value).__name__}>", payload=value)
    return _Cell(
        "bad",
        repr(value)[:80],
        error=(
            f"unsupported_input: {type(value).__name__} {repr(value)[:60]} is not an image; the "
            "column must hold file paths, http(s) URLs, bytes or PIL images"
        ),
    )


def _error_text(error_id: str, message: str) -> str:
    message = message.strip()
    return message if message.startswith(error_id) else f"{error_id}: {message}"


def result_from_body(body: Mapping[str, Any], request_id: str | None = None) -> RowResult:
    """Shape a v3/text response body into a row (an error in the body goes to the error column).

    >>> result_from_body({"text": "x", "confidence": 1, "request_id": "r"})[:5]
    ('x', None, 1.0, 'r', None)
    >>> result_from_body({"text": "x", "data": [{"type": "asciimath", "value": "x"}]}).data
    '[{"type": "asciimath", "value": "x"}]'
    >>> result_from_body({"error": "Content not found",
    ...                   "error_info": {"id": "image_no_content"}}, "r").error
    'image_no_content: Content not found [request_id r]'
    """
    rid = body.get("request_id") or request_id
    info = body.get("error_info")
    if body.get("error") or isinstance(info, Mapping):
        info = info if isinstance(info, Mapping) else {}
        eid = str(info.get("id") or "api_error")
        msg = str(info.get("message") or body.get("error") or "")
        return RowResult(
            request_id=rid, error=_error_text(eid, msg) + (f" [request_id {rid}]" if rid else "")
        )
    conf = body.get("confidence")
    html, data = body.get("html"), body.get("data")
    return RowResult(
        body.get("text"),
        body.get("latex_styled"),
        float(conf) if isinstance(conf, int | float) else None,
        rid,
        None,
        html if isinstance(html, str) else None,
        json.dumps(data, ensure_ascii=False) if data is not None else None,
    )


def _failed_entry(entry: JournalEntry) -> RowResult:
    return RowResult(
        request_id=entry.request_id,
        error=_error_text(entry.error_id or "api_error", entry.error or ""),
    )


def _received_at(item: Mapping[str, Any]) -> float | None:
    """When the server received an ocr-results item's request, on the server's clock
    (``timestamp - duration``); None if the item does not say."""
    stamp, duration = item.get("timestamp"), item.get("duration")
    if not isinstance(stamp, str) or not isinstance(duration, int | float):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - float(duration)


def _iso_floor(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class _Group:
    """Jobs polled together (by run + batch tag), and how far back a poll must look.

    Incremental polling without trusting either clock: every finished job brackets the
    offset between the server's clock and ours (the server received it after we started
    sending it and before its answer came back), so ``receipt - returned_at`` over finished
    jobs is a lower bound ``L`` of that offset. A waiting job was received at or after
    ``sent_at + L`` on the server's clock, so ``from_date`` = the oldest waiting job's
    ``sent_at + L`` skips what is already collected and never skips a waiting job. A group
    that makes no progress for ``_FULL_EVERY`` polls is polled in full once (a server clock
    that stepped back cannot hide a result for good)."""

    __slots__ = ("collected", "idle", "waiting")

    def __init__(self) -> None:
        self.waiting: dict[str, _Job] = {}
        self.idle = 0  # polls in a row that finished nothing here
        self.collected: list[float] = []  # receipt times (server clock) of jobs read back

    def windows(
        self, low: float | None, high: float | None, *, due: float = math.inf
    ) -> list[tuple[str | None, str | None]]:
        """``(from_date, to_date)`` ranges holding the receipt time of every waiting job
        that may be done: sent (``returned_at``) before ``due``, local clock.

        ``low`` / ``high`` bound the server-minus-our clock offset; a waiting job was
        received within ``[sent_at + low, returned_at + high]``. Overlapping ranges are
        merged, and so are neighbours with at most one collected job between them (a request
        costs more than one item read twice); then the ones with the fewest collected jobs
        between them until at most ``_WINDOWS`` remain; the last one is open. No bounds yet
        (or a stalled group): one full poll. Nothing due: no request."""
        jobs = [
            j for j in self.waiting.values() if j.returned_at < due or j.returned_at == math.inf
        ]
        if not jobs:
            return []
        if low is None or high is None or self.idle >= _FULL_EVERY:
            self.idle = 0 if self.idle >= _FULL_EVERY else self.idle
            return [(None, None)]
        spans = sorted((job.sent_at + low - 0.005, job.returned_at + high + 0.005) for job in jobs)
        if spans[0][0] == -math.inf or any(hi == math.inf for _, hi in spans):
            return [(None, None)]
        merged: list[list[float]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])

        def between(k: int) -> tuple[int, float]:  # collected jobs, then seconds, in gap k
            gap_lo, gap_hi = merged[k][1], merged[k + 1][0]
            count = bisect.bisect_left(self.collected, gap_hi) - bisect.bisect_right(
                self.collected, gap_lo
            )
            return count, gap_hi - gap_lo

        while len(merged) > 1:
            k = min(range(len(merged) - 1), key=between)
            if len(merged) <= _WINDOWS and between(k)[0] > 1:
                break
            merged[k : k + 2] = [[merged[k][0], merged[k + 1][1]]]
        out: list[tuple[str | None, str | None]] = [
            (_iso_floor(lo), _iso_floor(hi + 0.001)) for lo, hi in merged
        ]
        out[-1] = (out[-1][0], None)
        return out


_WINDOWS = 4
_FULL_EVERY = 20


def _body_error_id(body: Mapping[str, Any]) -> str | None:
    info = body.get("error_info")
    if isinstance(info, Mapping) and info.get("id"):
        return str(info["id"])
    return "api_error" if body.get("error") else None


def _item_request_id(item: Mapping[str, Any]) -> str | None:
    body = item.get("result")
    rid = item.get("image_id") or (body.get("request_id") if isinstance(body, Mapping) else None)
    return str(rid) if rid else None


def dataset_tag(name: str) -> str:
    """The tag every job of dataset ``name`` carries (a hash: any name is a safe tag).

    >>> dataset_tag("default")
    'mnb-ds-37a8eec1ce19687d'
    """
    return "mnb-ds-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def remote_job(item: Mapping[str, Any]) -> RemoteJob | None:
    """An ocr-results item of one of our jobs as a :class:`RemoteJob` (None if not ours)."""
    args = item.get("request_args")
    tags = args.get("tags") if isinstance(args, Mapping) else None
    rid = _item_request_id(item)
    if not isinstance(tags, list) or not rid:
        return None
    found: dict[str, str] = {}
    for tag in tags:
        if isinstance(tag, str):
            for kind in ("mnb-row-", "mnb-run-", "mnb-batch-"):
                if tag.startswith(kind):
                    found.setdefault(kind, tag)
    if "mnb-row-" not in found:
        return None
    body = item.get("result")
    return RemoteJob(
        found["mnb-row-"],
        rid,
        dict(body) if isinstance(body, Mapping) else None,
        found.get("mnb-run-"),
        found.get("mnb-batch-"),
    )


#: a dataset's listing re-reads this far before the last one (local clock, seconds): jobs that
#: were still being received then, and a server clock that is behind ours, are not missed
SYNC_MARGIN = 3600.0


class Listing(NamedTuple):
    """What :func:`list_dataset` read: our jobs, and the page size the server really gives
    when it is smaller than the ``per_page`` asked for (None: not seen)."""

    jobs: int
    page_cap: int | None


async def list_dataset(
    api: _api.Api,
    tag: str,
    *,
    per_page: int,
    since: float | None = None,
    on_jobs: Callable[[list[RemoteJob]], None],
) -> Listing:
    """Read every job tagged ``tag`` from v3/ocr-results (received after ``since`` minus
    :data:`SYNC_MARGIN`, local clock), page by page into ``on_jobs``.

    Paged by :meth:`Api.results`, which survives a server that cuts ``per_page`` to a smaller
    maximum without saying so (undocumented either way)."""
    from_date = _iso_floor(since - SYNC_MARGIN) if since is not None else None
    count = 0

    def on_page(items: list[dict[str, Any]]) -> _api.PageVerdict:
        nonlocal count
        jobs = [j for j in map(remote_job, items) if j is not None]
        count += len(jobs)
        on_jobs(jobs)
        return "more"

    await api.results(
        [tag], per_page=per_page, include_null=True, from_date=from_date, on_page=on_page
    )
    return Listing(count, api.page_cap)


class BulkRun:
    """One bulk run over ``values``; see :func:`run_bulk`."""

    def __init__(
        self,
        values: Iterable[Any],
        *,
        api: _api.Api,
        options: Mapping[str, Any],
        crop: tuple[int, int, int, int] | None,
        prepare: Any,
        journal: Journal,
        config: BulkConfig,
        on_rows_done: Callable[[int], None] | None = None,
        known: Mapping[str, RemoteJob] | None = None,
    ) -> None:
        self.values = values
        self.api = api
        self.options = dict(options)
        self.crop = crop
        self.prep: ImagePrep | None = api.prep if prepare is None else prep_option(prepare)
        self.journal = _GuardedJournal(journal)
        self.cfg = config
        self.on_rows_done = on_rows_done
        self.run_id = uuid.uuid4().hex[:12]
        self.run_tag = f"mnb-run-{self.run_id}"
        self.ds_tag = dataset_tag(config.dataset)
        # the dataset's jobs as the API lists them: read once per run into the journal, or
        # given (``known``: one listing shared by every partition of a Dask run)
        self.known = known
        self.synced = known is not None
        self._sync_lock = anyio.Lock()
        self.summary = BulkSummary(run_id=self.run_id)
        self.rows: list[_Job | RowResult] = []
        self.jobs: dict[str, _Job] = {}
        self.sources: dict[int, str] = {}  # row -> its own input, where a shared job names another
        # (run_tag, batch_tag) -> the jobs polled by those two tags
        self.pending: dict[tuple[str, str], _Group] = {}
        self.foreign: dict[str, _Job] = {}  # jobs another live run is sending
        self.sent_in_batch = 0
        self.batch_no = 0
        self.producing = True
        self._first_sent: float | None = None  # when this run's first upload started
        self._polled = 0  # results the polls have collected
        self.fatal: str | None = None
        self.unreachable = 0  # unreachable-server outcomes since the last answer
        # bounds of (server clock - our monotonic clock), from finished jobs (see _Group)
        self.offset: float | None = None
        self.offset_high: float | None = None
        #: shortest server-side ``duration`` seen: a job sent less than half of it ago is
        #: not polled for yet (it cannot be done)
        self.min_duration: float | None = None
        self.deadline = (time.monotonic() + config.timeout) if config.timeout else None
        self.base_url = api.base_url
        self.region = api.region
        self.async_mode = not self._use_fallback()
        self.summary.mode = "async" if self.async_mode else "sync"
        self._wake = anyio.Event()
        self._rng = random.Random()
        # image preparation is CPU work: one thread per core, ahead of (not inside) the upload
        self._prep_threads = anyio.CapacityLimiter(prep_threads())

    # -- set-up ----------------------------------------------------------------------------

    def _use_fallback(self) -> bool:
        if self.cfg.fallback is not None:
            return self.cfg.fallback
        meta = self.options.get("metadata") or {}
        reasons = []
        if not self.api.can_async:
            reasons.append("the client authenticates with an app token")
        if isinstance(meta, Mapping) and meta.get("improve_mathpix") is False:
            reasons.append("improve_mathpix=False keeps results out of v3/ocr-results")
        if not reasons:
            return False
        msg = (
            f"mathpix_nb bulk OCR: async v3/text is not possible ({'; '.join(reasons)}); "
            "falling back to concurrent synchronous v3/text requests"
        )
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        return True

    def _key(self, content_sha: str) -> str:
        return Journal.make_key(
            content_sha,
            self.options,
            region=self.region,
            crop=self.crop,
            extra={"prep": repr(self.prep)},  # sync and async results are interchangeable
        )

    # -- bookkeeping -----------------------------------------------------------------------

    def _notify(self, n: int) -> None:
        if self.on_rows_done is not None and n:
            self.on_rows_done(n)

    def _finish(self, job: _Job, result: RowResult, *, cached: bool = False) -> None:
        if job.result is not None:
            return
        job.result = result
        job.run_tag = job.batch_tag = job.row_tag = None  # keep only what the output needs
        n = len(job.positions)
        if result.error is not None:
            self.summary.failed += n
        elif cached:
            self.summary.cached += n
        else:  # rows sharing this image (duplicates in this run) count as cached
            self.summary.done += 1
            self.summary.cached += n - 1
        self._notify(n)

    def _fail(self, job: _Job, error_id: str, message: str, rid: str | None = None) -> None:
        self._finish(job, RowResult(request_id=rid, error=_error_text(error_id, message)))

    def _stop_run(self, job: _Job) -> None:
        assert self.fatal is not None
        self._finish(job, RowResult(error=self.fatal))

    def _set_row_error(self, pos: int, error: str) -> None:
        self.rows[pos] = RowResult(error=error)
        self.summary.failed += 1
        self._notify(1)

    def _add_pending(self, job: _Job) -> None:
        assert job.request_id and job.run_tag and job.batch_tag
        group = self.pending.setdefault((job.run_tag, job.batch_tag), _Group())
        group.waiting[job.request_id] = job
        self._wake.set()

    def _new_tags(self, job: _Job) -> list[str]:
        if self.sent_in_batch >= self.cfg.batch_size:
            self.batch_no += 1
            self.sent_in_batch = 0
        self.sent_in_batch += 1
        job.run_tag = self.run_tag
        job.batch_tag = f"mnb-batch-{self.run_id}-{self.batch_no}"
        job.row_tag = f"mnb-row-{job.key[:32]}"
        return [job.run_tag, job.batch_tag, job.row_tag, self.ds_tag]

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _capped(self, seconds: float) -> float:
        """A wait cut short by the run's deadline (every wait of a run goes through here)."""
        if self.deadline is not None:
            seconds = min(seconds, max(0.0, self.deadline - time.monotonic()))
        return max(0.0, seconds)

    def _answered(self) -> None:
        self.unreachable = 0

    def _unreachable(self, message: str) -> None:
        self.unreachable += 1
        if self.unreachable >= _BREAKER_TRIPS and self.fatal is None:
            self.fatal = _error_text(
                "server_unreachable",
                f"{message} The run stopped instead of trying every row; start the server "
                "(or fix base_url / the network) and rerun: finished rows are kept.",
            )

    # -- main ------------------------------------------------------------------------------

    async def run(self) -> tuple[list[RowResult], BulkSummary]:
        t0 = time.monotonic()
        limiter = anyio.Semaphore(max(1, self.cfg.concurrency))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._poller)  # results (async) and jobs other runs own
                async with anyio.create_task_group() as producers:
                    for value in self.values:
                        await limiter.acquire()
                        pos = len(self.rows)
                        self.rows.append(_EMPTY)
                        producers.start_soon(self._handle_row, pos, value, limiter)
                self.producing = False
                self._wake.set()
        finally:
            self.summary.elapsed = time.monotonic() - t0
            self.summary.requests = self.api.requests
            self.summary.retried += self.api.retries
        out: list[RowResult] = []
        for pos, item in enumerate(self.rows):
            if not isinstance(item, _Job):
                out.append(item)
            elif item.result is not None:
                row = item.result
                own = self.sources.get(pos)
                if own is not None and row.error is not None:  # name this row's own file
                    row = row._replace(
                        error=row.error.replace(item.source, own)
                        + f" (same content as {item.source})"
                    )
                out.append(row)
            else:
                self.summary.pending += 1
                self.summary.failed += 1
                out.append(
                    RowResult(
                        request_id=item.request_id,
                        error=(
                            "poll_timeout: no result before the deadline; the job stays in the "
                            "journal and a rerun collects it without sending the image again"
                        ),
                    )
                )
        self.summary.rows = len(out)
        return out, self.summary

    async def _handle_row(self, pos: int, value: Any, limiter: anyio.Semaphore) -> None:
        try:
            await self._handle_row_inner(pos, value)
        except Exception as exc:  # one row's surprise never ends the run
            log.exception("bulk row %d failed unexpectedly", pos)
            error = _error_text(
                "internal_error",
                f"{type(exc).__name__}: {exc} (this row only; please report it)",
            )
            item = self.rows[pos]
            if isinstance(item, _Job):
                if self.journal_safe(item.key):
                    self._finish(item, RowResult(error=error))
            else:
                self.rows[pos] = RowResult(error=error)
                self.summary.failed += 1
                self._notify(1)
        finally:
            limiter.release()

    def journal_safe(self, key: str) -> bool:
        """Give a job back after an unexpected failure (a rerun decides its fate)."""
        try:
            entry = self.journal.get(key)
            if entry is not None and entry.state == "submitting":
                self.journal.release(key)
        except Exception:  # the journal itself is what failed: nothing more to do
            log.debug("journal release failed for %s", key, exc_info=True)
        return True

    async def _read_file(self, pos: int, cell: _Cell) -> bytes | None:
        path: Path = cell.payload
        try:
            return await anyio.to_thread.run_sync(
                lambda: read_file(path, source=cell.source, max_bytes=self._max_file_bytes())
            )
        except ImageError as exc:
            if "\x00" in str(path):  # the core names it (a NUL is no file name anywhere)
                self._set_row_error(pos, _error_text("invalid_path", str(exc)))
            elif not path.exists() and not path.is_symlink():
                self._set_row_error(
                    pos,
                    (
                        f"file_not_found: {cell.source} does not exist; fix the path (relative "
                        f"paths are resolved from {os.getcwd()})"
                    ),
                )
            elif path.is_dir():
                self._set_row_error(
                    pos, f"image_unreadable: {cell.source} is a directory, not an image file"
                )
            else:
                self._set_row_error(pos, _error_text("image_unreadable", str(exc)))
            return None

    def _max_file_bytes(self) -> int:
        prep = self.prep or ImagePrep()
        return int(prep.max_file_bytes)

    async def _handle_row_inner(self, pos: int, value: Any) -> None:
        cell = _classify(value)
        if cell.error is not None:
            self._set_row_error(pos, cell.error)
            return
        payload = cell.payload
        if cell.kind == "file":
            payload = await self._read_file(pos, cell)
            if payload is None:
                return
            sha = hashlib.sha256(payload).hexdigest()
        elif cell.kind == "bytes":
            sha = hashlib.sha256(payload).hexdigest()
        elif cell.kind == "url":
            sha = "src:" + hashlib.sha256(payload.encode()).hexdigest()
        else:  # PIL / numpy: hash the pixels as they are (no decode or encode here)
            try:
                sha = await anyio.to_thread.run_sync(_pixels_sha, payload)
            except Exception as exc:
                self._set_row_error(
                    pos,
                    _error_text(
                        "image_unreadable",
                        f"{cell.source} cannot be read as an image ({type(exc).__name__}: "
                        f"{exc}); pass a numeric array or a PIL image",
                    ),
                )
                return
        key = self._key(sha)
        job = self.jobs.get(key)
        if job is not None:  # an identical image earlier in this run: share its job
            job.positions.append(pos)
            if cell.source != job.source:
                self.sources[pos] = cell.source
            self.rows[pos] = job
            self.summary.duplicates += 1
            if job.result is not None:
                if job.result.error is None:
                    self.summary.cached += 1
                else:
                    self.summary.failed += 1
                self._notify(1)
            return
        job = _Job(key, cell.kind, cell.source)
        job.positions.append(pos)
        self.jobs[key] = job
        self.rows[pos] = job
        if self.fatal:
            self._stop_run(job)
            return
        entry = self.journal.get(key)
        if entry is not None and await self._resume(job, entry):
            return
        if entry is None and self.cfg.recover and self.async_mode and await self._recover(job):
            return
        if entry is None and self.cfg.recover_by_tag and self.async_mode:
            # another machine's journal may hold it (a retried Dask partition): ask the API
            job.run_tag = job.batch_tag = job.row_tag = f"mnb-row-{key[:32]}"
            if await self._lookup_row(job, grace=0.0):
                self.summary.recovered += 1
                return
        await self._send(job, payload)

    # -- resume from the journal -----------------------------------------------------------

    async def _resume(self, job: _Job, entry: JournalEntry) -> bool:
        """Settle a job the journal already knows; False if it must be sent (again)."""
        if entry.state == "done" and entry.result is not None:
            self._finish(job, result_from_body(entry.result, entry.request_id), cached=True)
            return True
        if entry.state == "failed":
            self._finish(job, _failed_entry(entry), cached=True)
            return True
        if entry.owner != self.journal.owner and process_alive(entry.owner):
            self.foreign[job.key] = job  # another live run is on it: wait for its answer
            self._wake.set()
            return True
        if not self.async_mode or entry.base_url not in (None, "", self.base_url):
            return False  # cannot be looked up here: send it (claim() takes it over)
        self.journal.adopt(job.key)
        job.run_tag, job.row_tag = entry.run_tag, entry.row_tag
        if entry.state == "submitted" and entry.request_id and entry.run_tag:
            job.request_id = entry.request_id
            job.batch_tag = entry.run_tag  # poll by the old run's tag
            self.summary.recovered += 1
            self._add_pending(job)
            return True
        # A submission that may still be in flight gets up to unknown_grace seconds to show
        # up, counted from when it was written; a clock that was ahead (updated_at in the
        # future) cannot stretch that, and the run's deadline caps it.
        age = max(0.0, time.time() - entry.updated_at)
        grace = self._capped(max(0.0, self.cfg.unknown_grace - age))
        if entry.row_tag and await self._lookup_row(job, grace=grace):
            self.summary.recovered += 1
            return True
        return False

    # -- recovery from the API's record ----------------------------------------------------

    async def _sync(self) -> None:
        """Read the dataset's jobs the journal has not listed yet (once per run)."""
        if self.synced:
            return
        async with self._sync_lock:
            if self.synced:
                return
            started = time.time()
            since = self.journal.synced_until(self.ds_tag, base_url=self.base_url)

            def keep(jobs: list[RemoteJob]) -> None:
                self.journal.remember(jobs, base_url=self.base_url)

            try:
                listing = await list_dataset(
                    self.api, self.ds_tag, per_page=self.cfg.per_page, since=since, on_jobs=keep
                )
            except _api.Retryable as exc:
                # cannot list now: rows the journal lacks are looked up one by one instead
                log.warning(
                    "listing dataset %s failed (%s); looking rows up by tag", self.ds_tag, exc
                )
                self.cfg = dataclasses.replace(self.cfg, recover_by_tag=True)
                if exc.unreachable:
                    self._unreachable(exc.message)
            except _api.Failed as exc:
                if exc.fatal:
                    self.fatal = _error_text(exc.error_id, exc.message)
                log.warning("listing dataset %s failed (%s)", self.ds_tag, exc)
            else:
                self._answered()
                self.summary.listed += listing.jobs
                self.journal.mark_synced(self.ds_tag, base_url=self.base_url, until=started)
            self.synced = True

    async def _recover(self, job: _Job) -> bool:
        """Settle a job the journal lacks from the API's record of the dataset; False if the
        API never accepted it (send it)."""
        await self._sync()
        row_tag = f"mnb-row-{job.key[:32]}"
        if self.known is not None:
            found = self.known.get(row_tag)
        else:
            found = self.journal.remote(row_tag, base_url=self.base_url)
        if found is None or self.fatal:
            return False
        body = found.result
        if body is not None and _body_error_id(body) in _RETRYABLE_RESULT_IDS:
            return False  # that attempt failed on the server's side: send it again
        job.request_id = found.request_id
        job.row_tag = row_tag
        job.run_tag = found.run_tag or row_tag
        job.batch_tag = found.batch_tag or job.run_tag
        self.summary.recovered += 1
        # recorded like a job of this run (with its row tag), then settled or polled
        if not self.journal.claim(
            job.key,
            run_tag=job.run_tag,
            row_tag=row_tag,
            base_url=self.base_url,
            source=job.source,
        ):
            self.foreign[job.key] = job  # another live run took it meanwhile
            self._wake.set()
            return True
        self.journal.submitted(job.key, found.request_id)
        if body is not None:
            self._complete(job, body, cached=True)
            return True
        # accepted and still processing: poll for it with the jobs of its own batch
        job.sent_at = -math.inf  # its receipt time is unknown here: poll from the start
        self._add_pending(job)
        return True

    # -- sending ---------------------------------------------------------------------------

    def _image(self, job: _Job, payload: Any) -> Any:
        if job.kind == "bytes" or job.kind == "file":
            buf = io.BytesIO(payload)
            buf.name = job.source  # names the input in messages and the upload's file name
            return buf
        return payload

    async def _prepared(self, job: _Job, image: Any) -> PreparedImage | None:
        """``image`` made ready to upload (the core's :func:`prepare_image`, in a thread per
        core), once for every attempt; None if it cannot be (the row's error is set).

        Done here rather than inside the upload call so that the CPU work neither holds an
        upload slot nor counts as time in flight: ``sent_at`` then brackets the request
        itself, which keeps the polls' date windows tight."""
        prep = self.prep
        assert prep is not None
        try:
            return await anyio.to_thread.run_sync(
                lambda: prepare_image(image, crop=self.crop, prep=prep),
                limiter=self._prep_threads,
            )
        except ImageError as exc:
            self._fail(job, "image_unreadable", str(exc))
            return None

    async def _send(self, job: _Job, payload: Any) -> None:
        """Claim and submit one job, retrying transient failures."""
        image = self._image(job, payload)
        prepare: ImagePrep | bool = self.prep if self.prep is not None else False
        crop = self.crop
        del payload
        if self.prep is not None and job.kind != "url":
            image = await self._prepared(job, image)
            if image is None:
                return
            prepare, crop = False, None  # cropped and prepared already
        while True:
            if self.fatal:
                self._stop_run(job)
                return
            if self._past_deadline():
                self._fail(
                    job,
                    "poll_timeout",
                    "the run's deadline passed before this image was sent; rerun to continue",
                )
                return
            job.attempts += 1
            if job.attempts > 1:
                self.summary.retried += 1
            tags = self._new_tags(job) if self.async_mode else []
            if not self.journal.claim(
                job.key,
                run_tag=job.run_tag,
                row_tag=job.row_tag,
                base_url=self.base_url,
                source=job.source,
                force=job.attempts > 1,
            ):
                self.foreign[job.key] = job  # another live run took it meanwhile
                self._wake.set()
                return
            if isinstance(image, io.BytesIO):
                image.seek(0)
            job.sent_at = time.monotonic()
            if self._first_sent is None:
                self._first_sent = job.sent_at
            try:
                if self.async_mode:
                    rid = await self.api.submit(
                        image, tags=tags, options=self.options, crop=crop, prepare=prepare
                    )
                else:
                    body = await self.api.text(
                        image, options=self.options, crop=crop, prepare=prepare
                    )
            except _api.Unknown as exc:
                self._answered()
                self.summary.submitted += 1  # it went out; it may have landed
                # the upload may have landed: look for it by its row tag before resending
                log.info("submission of %s lost (%s); looking it up by tag", job.source, exc)
                grace = self._capped(self.cfg.unknown_grace)
                if self.async_mode and await self._lookup_row(job, grace=grace):
                    self.summary.recovered += 1
                    return
                if job.attempts >= self.cfg.max_attempts:
                    self.journal.release(job.key)
                    self._fail(job, "connection_error", str(exc))
                    return
                await anyio.sleep(self._capped(self._backoff(job.attempts)))
                continue
            except _api.Retryable as exc:
                self.journal.release(job.key)
                if exc.unreachable:
                    self._unreachable(exc.message)
                else:
                    self._answered()
                if exc.error_id == "http_max_requests":
                    job.attempts -= 1  # rate limits only slow a run down; they never fail a row
                elif job.attempts >= self.cfg.max_attempts:
                    self._fail(job, exc.error_id, exc.message)
                    return
                wait = exc.retry_after if exc.retry_after is not None else None
                await anyio.sleep(self._capped(wait or self._backoff(job.attempts)))
                continue
            except _api.Failed as exc:
                self._answered()
                if exc.fatal:
                    self.fatal = _error_text(exc.error_id, exc.message)
                    self.journal.release(job.key)
                else:
                    self.summary.submitted += exc.request_id is not None
                    self.journal.failed(
                        job.key,
                        exc.error_id,
                        exc.message,
                        request_id=exc.request_id,
                        permanent=exc.permanent,
                    )
                self._fail(job, exc.error_id, exc.message, exc.request_id)
                return
            job.returned_at = time.monotonic()
            self._answered()
            self.summary.submitted += 1
            if not self.async_mode:
                self.journal.done(
                    job.key, body, request_id=body.get("request_id"), source=job.source
                )
                self._finish(job, result_from_body(body))
                return
            job.request_id = rid
            self.journal.submitted(job.key, rid)
            self._add_pending(job)
            return

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(10.0, 0.25 * 2**attempt))

    async def _lookup_row(self, job: _Job, *, grace: float) -> bool:
        """Search ocr-results by the job's row tag (pending rows too); True if it is there."""
        give_up = time.monotonic() + grace
        while True:
            try:
                items = await self.api.results([job.row_tag or ""], per_page=100, include_null=True)
            except _api.Retryable as exc:
                if exc.unreachable:
                    self._unreachable(exc.message)
                    if self.fatal:
                        return False
                items = []
            except _api.Failed as exc:
                if exc.fatal:
                    self.fatal = _error_text(exc.error_id, exc.message)
                return False
            for item in items:
                rid = _item_request_id(item)
                if not rid:
                    continue
                job.request_id = rid
                self.journal.submitted(job.key, rid, run_tag=job.run_tag, row_tag=job.row_tag)
                if isinstance(item.get("result"), Mapping):
                    self._complete(job, item["result"])
                else:  # accepted, still processing: poll for it by run + row tag
                    job.batch_tag = job.row_tag
                    job.sent_at = -math.inf  # its receipt time is unknown: poll from the start
                    self._add_pending(job)
                return True
            if time.monotonic() >= give_up or self._past_deadline():
                return False
            await anyio.sleep(self._capped(min(max(self.cfg.poll_interval, 0.05), 0.5)))

    # -- polling ---------------------------------------------------------------------------

    def _complete(self, job: _Job, body: Mapping[str, Any], *, cached: bool = False) -> None:
        eid = _body_error_id(body)
        if eid is None:
            self.journal.done(job.key, body, request_id=job.request_id, source=job.source)
            self._finish(job, result_from_body(body, job.request_id), cached=cached)
            return
        row = result_from_body(body, job.request_id)
        # a server-side failure of this attempt is not cached: a rerun sends it again
        self.journal.failed(
            job.key,
            eid,
            row.error or eid,
            request_id=job.request_id,
            permanent=eid not in _RETRYABLE_RESULT_IDS,
        )
        self._finish(job, row, cached=cached)

    async def _poller(self) -> None:
        while True:
            if self.pending:
                await self._poll_once()
            if self.foreign:
                self._check_foreign()
            if not self.producing and not self.pending and not self.foreign:
                return
            if self._past_deadline():
                return
            self._wake = anyio.Event()
            if self.pending or self.foreign:
                await anyio.sleep(self._capped(self._poll_wait()))
            else:
                with anyio.move_on_after(self._capped(self.cfg.poll_interval)):
                    await self._wake.wait()

    def _poll_wait(self) -> float:
        """Seconds to the next poll: ``poll_interval`` while rows are still being sent; after
        that, the time the waiting jobs should take at the rate results have come in so far
        (never under a tenth of ``poll_interval``, 50 ms at least), so that the run's last
        results are not read up to a whole interval late."""
        every = self.cfg.poll_interval
        if self.producing or not self._polled or self._first_sent is None:
            return every
        waiting = sum(len(group.waiting) for group in self.pending.values())
        rate = self._polled / max(time.monotonic() - self._first_sent, 1e-3)
        return max(min(every, max(0.05, every / 10)), min(every, waiting / rate))

    async def _poll_once(self) -> None:
        for key in list(self.pending):
            group = self.pending.get(key)
            if group is None or not group.waiting:
                self.pending.pop(key, None)
                continue
            run_tag, batch_tag = key
            tags = [run_tag] if batch_tag == run_tag else [run_tag, batch_tag]
            waiting = group.waiting

            found = [0]

            def on_page(
                items: list[dict[str, Any]], group: _Group = group, found: list[int] = found
            ) -> _api.PageVerdict:
                before = found[0]
                for item in items:
                    rid = _item_request_id(item)
                    body = item.get("result")
                    job = group.waiting.get(rid) if rid else None
                    if job is not None and isinstance(body, Mapping):
                        del group.waiting[rid]  # type: ignore[arg-type]
                        found[0] += 1
                        self._polled += 1
                        received = _received_at(item)
                        spent = item.get("duration")
                        if isinstance(spent, int | float) and spent > 0:
                            seen = self.min_duration
                            self.min_duration = spent if seen is None else min(seen, spent)
                        if received is not None:
                            bisect.insort(group.collected, received)
                        if received is not None and job.returned_at < math.inf:
                            bound = received - job.returned_at
                            if self.offset is None or bound > self.offset:
                                self.offset = bound
                            top = received - job.sent_at
                            if self.offset_high is None or top < self.offset_high:
                                self.offset_high = top
                        self._complete(job, body)
                if not group.waiting:
                    return "done"
                return "moved" if found[0] > before else "more"

            due = (
                math.inf if self.min_duration is None else time.monotonic() - self.min_duration / 2
            )
            spans = group.windows(self.offset, self.offset_high, due=due)
            if not spans:
                continue
            try:
                for since, until in spans:
                    if group.waiting:
                        await self.api.results(
                            tags,
                            per_page=self.cfg.per_page,
                            from_date=since,
                            to_date=until,
                            on_page=on_page,
                        )
            except _api.Retryable as exc:
                if exc.unreachable:
                    self._unreachable(exc.message)
                log.info("polling v3/ocr-results failed (%s); trying again", exc)
                if self.fatal:
                    self._fail_waiting(waiting, "server_unreachable", self.fatal)
                continue
            except _api.Failed as exc:
                self.fatal = _error_text(exc.error_id, exc.message)
                self._fail_waiting(waiting, exc.error_id, exc.message)
            else:
                self._answered()
            group.idle = 0 if found[0] else group.idle + 1
            if not waiting:
                self.pending.pop(key, None)

    def _fail_waiting(self, waiting: dict[str, _Job], error_id: str, message: str) -> None:
        for job in list(waiting.values()):
            self._fail(job, error_id, message, job.request_id)
        waiting.clear()

    def _check_foreign(self) -> None:
        for key, job in list(self.foreign.items()):
            entry = self.journal.get(key)
            if entry is not None and entry.final:
                del self.foreign[key]
                if entry.state == "done" and entry.result is not None:
                    self._finish(job, result_from_body(entry.result, entry.request_id), cached=True)
                else:
                    self._finish(job, _failed_entry(entry), cached=True)
            elif entry is None or not process_alive(entry.owner):
                del self.foreign[key]
                self._fail(
                    job,
                    "interrupted",
                    "another run was sending this image and stopped; rerun to send it",
                )


class _GuardedJournal:
    """The run's journal; a write that fails mid-run (disk full, file gone) is logged once
    and the run goes on without it: finished rows stay in the output, a rerun redoes only
    what the journal could not record."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.owner = journal.owner
        self.broken: str | None = None

    def _guard(self, name: str, default: Any, *args: Any, **kwargs: Any) -> Any:
        if self.broken is not None and name not in ("get",):
            return default
        try:
            return getattr(self._journal, name)(*args, **kwargs)
        except sqlite3.Error as exc:
            if self.broken is None:
                self.broken = f"{type(exc).__name__}: {exc}"
                msg = (
                    f"mathpix_nb bulk OCR: the journal {self._journal.path} stopped taking "
                    f"writes ({self.broken}); the run goes on without it (free disk space "
                    "or pass journal= elsewhere to resume later runs)"
                )
                log.warning(msg)
                warnings.warn(msg, UserWarning, stacklevel=2)
            return default

    def get(self, key: str) -> JournalEntry | None:
        return self._guard("get", None, key)  # type: ignore[no-any-return]

    def claim(self, key: str, **kwargs: Any) -> bool:
        return bool(self._guard("claim", True, key, **kwargs))

    def adopt(self, key: str) -> None:
        self._guard("adopt", None, key)

    def submitted(self, key: str, request_id: str, **kwargs: Any) -> None:
        self._guard("submitted", None, key, request_id, **kwargs)

    def done(self, key: str, result: Mapping[str, Any], **kwargs: Any) -> None:
        self._guard("done", None, key, result, **kwargs)

    def failed(self, key: str, error_id: str, message: str, **kwargs: Any) -> None:
        self._guard("failed", None, key, error_id, message, **kwargs)

    def release(self, key: str) -> None:
        self._guard("release", None, key)

    def remember(self, jobs: list[RemoteJob], *, base_url: str) -> None:
        self._guard("remember", None, jobs, base_url=base_url)

    def remote(self, row_tag: str, *, base_url: str) -> RemoteJob | None:
        return self._guard("remote", None, row_tag, base_url=base_url)  # type: ignore[no-any-return]

    def synced_until(self, dataset: str, *, base_url: str) -> float | None:
        return self._guard("synced_until", None, dataset, base_url=base_url)  # type: ignore[no-any-return]

    def mark_synced(self, dataset: str, *, base_url: str, until: float) -> None:
        self._guard("mark_synced", None, dataset, base_url=base_url, until=until)


def _pixels_sha(image: Any) -> str:
    """A content hash of a PIL image or numpy array from its pixels, without encoding it."""
    h = hashlib.sha256()
    if hasattr(image, "getbands") and hasattr(image, "tobytes"):  # PIL
        h.update(f"pil:{image.mode}:{image.size}:".encode())
        h.update(image.tobytes())
    else:
        import numpy as np

        arr = np.ascontiguousarray(image)
        if arr.dtype.hasobject:
            raise TypeError(f"a numpy array of dtype {arr.dtype} holds objects, not pixels")
        h.update(f"np:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return "px:" + h.hexdigest()


async def run_bulk(
    values: Iterable[Any],
    *,
    api: _api.Api,
    options: Mapping[str, Any] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    prepare: Any = None,
    journal: Journal,
    config: BulkConfig | None = None,
    on_rows_done: Callable[[int], None] | None = None,
    known: Mapping[str, RemoteJob] | None = None,
) -> tuple[list[RowResult], BulkSummary]:
    """Run the bulk flow over ``values``; one :data:`RowResult` per value, in order.

    ``known``: the dataset's jobs as v3/ocr-results listed them (by row tag), when the
    caller read them once for several runs (Dask partitions); default: listed here."""
    run = BulkRun(
        values,
        api=api,
        options=options or {},
        crop=crop,
        prepare=prepare,
        journal=journal,
        config=config or BulkConfig(),
        on_rows_done=on_rows_done,
        known=known,
    )
    return await run.run()


__all__ = [
    "BulkConfig",
    "BulkRun",
    "BulkSummary",
    "RowResult",
    "dataset_tag",
    "list_dataset",
    "remote_job",
    "result_from_body",
    "run_bulk",
]
