"""State of the local server: app tokens (account-wide), per-region result stores (OCR
results, PDFs, batches) and the request log.

Mutated only on the server's event-loop thread; the log is also read from other threads,
so it has a lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


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
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass
class TokenInfo:
    app_token: str
    expires_at: float  # epoch seconds
    app_id: str
    group_id: str
    user_id: str | None
    strokes_session_id: str | None = None


class TokenStore:
    """App tokens are account data: shared by every region, like Mathpix's global auth."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenInfo] = {}

    def create(
        self, *, lifetime: float, app_id: str, group_id: str, user_id: str | None, strokes: bool
    ) -> TokenInfo:
        info = TokenInfo(
            app_token="token_" + secrets.token_hex(16),
            expires_at=time.time() + lifetime,
            app_id=app_id,
            group_id=group_id,
            user_id=user_id,
            strokes_session_id=("strokes_" + secrets.token_hex(16)) if strokes else None,
        )
        self._tokens[info.app_token] = info
        return info

    def get(self, token: str) -> TokenInfo | None:
        return self._tokens.get(token)

    def delete(self, token: str) -> TokenInfo | None:
        return self._tokens.pop(token, None)

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


@dataclass
class PdfJob:
    pdf_id: str
    app_id: str
    created: float
    input_file: str
    request_args: dict[str, Any]
    conversion_formats: list[str]
    store_results: bool
    status: str = "received"
    modified: float = 0.0
    num_pages: int | None = None
    num_pages_completed: int = 0
    pages: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, bytes] = field(default_factory=dict)
    conversion_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    error_info: dict[str, Any] | None = None
    deleted_at: float | None = None
    version: str | None = None  # engine version, as in the reference's status/deletion metadata

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
class BatchJob:
    batch_id: int
    app_id: str
    keys: list[str]
    callback: dict[str, Any] | None
    results: dict[str, Any] = field(default_factory=dict)


class RegionStore:
    """What one region remembers; results are never merged across regions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.results: dict[str, StoredResult] = {}
        self.pdfs: dict[str, PdfJob] = {}
        self.batches: dict[int, BatchJob] = {}
        self._next_batch = 1

    def next_batch_id(self) -> int:
        n = self._next_batch
        self._next_batch += 1
        return n
