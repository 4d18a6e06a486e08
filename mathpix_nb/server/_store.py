"""State of the local server: app tokens (account-wide), per-region result stores (OCR
results, PDFs, conversions, batches) and the request log.

Everything is bounded: the log keeps the last ``max_log_records`` records, a region keeps
its last ``max_stored_results`` OCR results and ``max_stored_documents`` PDFs, conversions
and batches (oldest first out, in insertion order). OCR results are indexed by tag, PDF and
app id with their (monotonic) timestamps, so a listing costs O(page), not O(store).

Mutated only on the server's event-loop thread; the log is also read from other threads,
so it has a lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def iso(ts: float) -> str:
    """Epoch seconds -> ``2021-07-02T18:48:46.080Z`` (the API's timestamp format)."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. Never holds credentials, tokens or image bytes."""

    endpoint: str  # route template, e.g. "/v3/pdf/{pdf_id}"
    method: str
    region: str
    path: str
    bytes_received: int
    auth_mode: str | None  # "keys" | "app_key" | "app_token" | None
    tags: tuple[str, ...]
    status_code: int | None  # None when the connection was dropped
    error_id: str | None
    request_id: str | None
    image_sha256: str | None
    fault: str | None
    timestamp: float
    duration: float

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.error_id is None


class RequestLog:
    """The last ``limit`` records (oldest first); ``dropped`` counts what fell off the front."""

    def __init__(self, limit: int = 100_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def limit(self) -> int:
        return self._records.maxlen or 0

    def resize(self, limit: int) -> None:
        with self._lock:
            if limit != self._records.maxlen:
                self.dropped += max(0, len(self._records) - limit)
                self._records = deque(self._records, maxlen=limit)

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.dropped += 1
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.dropped = 0


@dataclass
class TokenInfo:
    app_token: str
    expires_at: float  # epoch seconds
    app_id: str
    group_id: str
    user_id: str | None
    strokes_session_id: str | None = None
    # a live strokes session: the ink received so far and whether it was billed yet
    ink_x: list[list[float]] = field(default_factory=list)
    ink_y: list[list[float]] = field(default_factory=list)
    session_billed: bool = False


class TokenStore:
    """App tokens are account data: shared by every region, like Mathpix's global auth."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenInfo] = {}
        self._sessions: dict[str, str] = {}  # strokes_session_id -> app_token

    #: expired tokens are forgotten this long after they expire (GET answers token_unknown)
    FORGET_AFTER = 3600.0

    def create(
        self, *, lifetime: float, app_id: str, group_id: str, user_id: str | None, strokes: bool
    ) -> TokenInfo:
        self._prune(time.time())
        info = TokenInfo(
            app_token="token_" + secrets.token_hex(16),
            expires_at=time.time() + lifetime,
            app_id=app_id,
            group_id=group_id,
            user_id=user_id,
            strokes_session_id=("strokes_" + secrets.token_hex(16)) if strokes else None,
        )
        self._tokens[info.app_token] = info
        if info.strokes_session_id:
            self._sessions[info.strokes_session_id] = info.app_token
        return info

    def _prune(self, now: float) -> None:
        if len(self._tokens) < 1024:
            return
        for key in [k for k, v in self._tokens.items() if v.expires_at + self.FORGET_AFTER < now]:
            self.delete(key)

    def get(self, token: str) -> TokenInfo | None:
        return self._tokens.get(token)

    def session(self, strokes_session_id: str) -> TokenInfo | None:
        """The token that opened a live strokes session (None if unknown)."""
        token = self._sessions.get(strokes_session_id)
        return self._tokens.get(token) if token is not None else None

    def delete(self, token: str) -> TokenInfo | None:
        info = self._tokens.pop(token, None)
        if info is not None and info.strokes_session_id:
            self._sessions.pop(info.strokes_session_id, None)
        return info

    def valid(self, token: str, now: float) -> TokenInfo | None:
        info = self._tokens.get(token)
        if info is None or info.expires_at <= now:
            return None
        return info


@dataclass
class StoredResult:
    """One row of ``v3/ocr-results``. ``result`` is None while an async request is pending."""

    image_id: str
    endpoint: str
    created: float
    app_id: str
    request_args: dict[str, Any]
    tags: tuple[str, ...]
    result: dict[str, Any] | None = None
    detections: dict[str, bool] = field(default_factory=dict)
    timestamp: float | None = None
    duration: float | None = None
    visible_at: float = 0.0
    pdf_id: str | None = None

    def item(self) -> dict[str, Any]:
        return {
            "timestamp": iso(self.timestamp if self.timestamp is not None else self.created),
            "duration": round(self.duration, 3) if self.duration is not None else None,
            "endpoint": self.endpoint,
            "request_args": self.request_args,
            "result": self.result,
            "detections": self.detections,
            "image_id": self.image_id,
        }


class _Postings:
    """Ids of the rows under one index key, in insertion order, with their creation times
    (non-decreasing, so date bounds are two binary searches). Rows leave only from the
    front (the store evicts oldest first), so removal is a moving ``head``."""

    __slots__ = ("head", "ids", "times")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.times: list[float] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.ids) - self.head

    def append(self, row_id: str, created: float) -> None:
        self.ids.append(row_id)
        self.times.append(created)

    def drop_front(self, row_id: str) -> None:
        if self.head < len(self.ids) and self.ids[self.head] == row_id:
            self.head += 1
            if self.head > 1024 and self.head * 2 > len(self.ids):
                del self.ids[: self.head], self.times[: self.head]
                self.head = 0

    def span(self, lo: float, hi: float) -> tuple[int, int]:
        """Index range of the rows with ``lo <= created < hi``."""
        return (
            bisect_left(self.times, lo, self.head),
            bisect_left(self.times, hi, self.head),
        )


class ResultStore:
    """OCR results of one region: a dict by request id plus posting lists by tag, PDF and
    app id. At most ``limit`` rows; adding one more evicts the oldest (``evicted`` counts)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._rows: dict[str, StoredResult] = {}
        self._all = _Postings()
        self._index: dict[tuple[str, str], _Postings] = {}
        self._last_created = 0.0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._rows

    def get(self, request_id: str) -> StoredResult | None:
        return self._rows.get(request_id)

    def values(self) -> Iterator[StoredResult]:
        return iter(list(self._rows.values()))

    def _keys(self, row: StoredResult) -> list[tuple[str, str]]:
        keys = [("tag", t) for t in dict.fromkeys(row.tags)]
        keys.append(("app", row.app_id))
        if row.pdf_id is not None:
            keys.append(("pdf", row.pdf_id))
        return keys

    def add(self, row: StoredResult) -> None:
        """Store a new row (its ``created`` is kept non-decreasing for the index)."""
        if row.image_id in self._rows:
            raise ValueError(f"result {row.image_id} is already stored")
        row.created = max(row.created, self._last_created)
        self._last_created = row.created
        self._rows[row.image_id] = row
        self._all.append(row.image_id, row.created)
        for key in self._keys(row):
            self._index.setdefault(key, _Postings()).append(row.image_id, row.created)
        while len(self._rows) > self.limit:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        oldest_id = next(iter(self._rows))
        oldest = self._rows.pop(oldest_id)
        self._all.drop_front(oldest_id)
        for key in self._keys(oldest):
            postings = self._index.get(key)
            if postings is not None:
                postings.drop_front(oldest_id)
                if not postings:
                    del self._index[key]
        self.evicted += 1

    def resize(self, limit: int) -> None:
        self.limit = limit
        while len(self._rows) > limit:
            self._evict_oldest()

    def query(
        self,
        *,
        tags: frozenset[str] = frozenset(),
        app_id: str | None = None,
        pdf_id: str | None = None,
        lo: float = float("-inf"),
        hi: float = float("inf"),
        newest_first: bool = True,
        keep: Callable[[StoredResult], bool] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[StoredResult]:
        """Rows matching every filter, in insertion order (or reversed), ``offset`` skipped.

        Walks the shortest posting list among the queried tags / PDF / app id, inside the
        date bounds, and stops once the page is full: O(offset + limit + rows skipped by the
        other filters), never a scan of the whole store for tag or date queries."""
        lists = [self._all]
        for key in [("tag", t) for t in tags] + [("pdf", pdf_id), ("app", app_id)]:
            if key[1] is None:
                continue
            postings = self._index.get(key)  # type: ignore[arg-type]
            if postings is None:
                return []
            lists.append(postings)
        postings = min(lists, key=len)
        start, stop = postings.span(lo, hi)
        positions = range(stop - 1, start - 1, -1) if newest_first else range(start, stop)
        out: list[StoredResult] = []
        skipped = 0
        for i in positions:
            row = self._rows.get(postings.ids[i])
            if row is None:
                continue
            if tags and not tags.issubset(row.tags):
                continue
            if app_id is not None and row.app_id != app_id:
                continue
            if pdf_id is not None and row.pdf_id != pdf_id:
                continue
            if keep is not None and not keep(row):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(row)
            if len(out) >= limit:
                break
        return out


class Bounded(Generic[K, V]):
    """An insertion-ordered dict that keeps its last ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[K, V] = {}
        self.evicted = 0

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        while len(self._items) > self.limit:
            del self._items[next(iter(self._items))]
            self.evicted += 1

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def values(self) -> list[V]:
        return list(self._items.values())

    def resize(self, limit: int) -> None:
        self.limit = limit
        while len(self._items) > limit:
            del self._items[next(iter(self._items))]
            self.evicted += 1


@dataclass
class Conversions:
    """What every document with outputs shares (PDFs and v3/converter jobs): the formats
    asked for, their status objects, the bytes made so far and which converter made them."""

    conversion_formats: list[str] = field(default_factory=list)
    conversion_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)
    converters: dict[str, str] = field(default_factory=dict)


@dataclass
class PdfJob(Conversions):
    pdf_id: str = ""
    app_id: str = ""
    created: float = 0.0
    input_file: str = ""
    request_args: dict[str, Any] = field(default_factory=dict)
    store_results: bool = True
    status: str = "received"
    modified: float = 0.0
    num_pages: int | None = None
    num_pages_completed: int = 0
    pages: list[dict[str, Any]] = field(default_factory=list)
    error_info: dict[str, Any] | None = None
    deleted_at: float | None = None
    version: str | None = None  # engine version, as in the reference's status/deletion metadata

    @property
    def doc_id(self) -> str:
        return self.pdf_id

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"pdf_id": self.pdf_id, "status": self.status}
        if self.num_pages is not None:
            body["num_pages"] = self.num_pages
            body["num_pages_completed"] = self.num_pages_completed
            body["percent_done"] = (
                100 * self.num_pages_completed / self.num_pages if self.num_pages else 100
            )
        if self.conversion_status:
            body["conversion_status"] = self.conversion_status
        body["input_file"] = self.input_file
        if self.version is not None:
            body["version"] = self.version
        if self.error_info is not None:
            body["error"] = self.error_info["message"]
            body["error_info"] = self.error_info
        if self.deleted_at is not None:
            body["deleted_at"] = iso(self.deleted_at)
        return body


@dataclass
class ConversionJob(Conversions):
    """A ``POST v3/converter`` job: MMD in, the requested formats out."""

    conversion_id: str = ""
    app_id: str = ""
    created: float = 0.0
    mmd: str = ""
    request_args: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"  # the MMD document exists from the start
    modified: float = 0.0
    deleted_at: float | None = None

    @property
    def doc_id(self) -> str:
        return self.conversion_id


@dataclass
class BatchJob:
    batch_id: int
    app_id: str
    keys: list[str]
    callback: dict[str, Any] | None
    results: dict[str, Any] = field(default_factory=dict)


class RegionStore:
    """What one region remembers; results are never merged across regions."""

    def __init__(self, name: str, max_results: int = 100_000, max_documents: int = 1_000) -> None:
        self.name = name
        self.results = ResultStore(max_results)
        self.pdfs: Bounded[str, PdfJob] = Bounded(max_documents)
        self.conversions: Bounded[str, ConversionJob] = Bounded(max_documents)
        self.batches: Bounded[int, BatchJob] = Bounded(max_documents)
        self._next_batch = 1

    def resize(self, max_results: int, max_documents: int) -> None:
        self.results.resize(max_results)
        self.pdfs.resize(max_documents)
        self.conversions.resize(max_documents)
        self.batches.resize(max_documents)

    def next_batch_id(self) -> int:
        n = self._next_batch
        self._next_batch += 1
        return n
