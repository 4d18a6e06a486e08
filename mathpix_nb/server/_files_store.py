"""State of the local Files API: documents, jobs, data sources, idempotency keys (one
``FilesRegion`` per region) and the account-wide webhook secret and external id
(``FilesAccount``). Mutated only on the server's event-loop thread.

Records are small and slotted: a 200,000-item job is 200,000 ``FileRecord`` objects sharing
one ``Submission`` (the request-level options), nothing more.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._store import iso

if TYPE_CHECKING:
    from ._files_state import Journal
    from ._store import PdfJob

_EMPTY: Mapping[str, Any] = MappingProxyType({})
TERMINAL = ("completed", "error")
#: always downloadable once a file is completed (the SCS migration guide's per-input outputs)
ALWAYS_FORMATS = ("mmd", "lines.json", "lines.mmd.json")
DEFAULT_FILE_EVENTS = ("file.completed", "file.error")
DEFAULT_JOB_EVENTS = ("job.completed",)
EVENTS = ("file.completed", "file.error", "job.completed")
TEST_FILE_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Callback:
    """Where one submission's notifications go (``callback_url`` / ``_headers`` / ``_events``)."""

    url: str
    headers: tuple[tuple[str, str], ...]
    events: tuple[str, ...]

    def wants(self, event: str) -> bool:
        return event in self.events

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "headers": dict(self.headers), "events": list(self.events)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Callback:
        return cls(data["url"], tuple(sorted(data["headers"].items())), tuple(data["events"]))


@dataclass
class Submission:
    """What every document of one request shares: OCR options, formats, callback."""

    options: dict[str, Any]  # v3/pdf-style OCR options (page_ranges, rm_spaces, ...)
    formats: tuple[str, ...]  # requested conversion formats, mmd excluded
    callback: Callback | None
    image_output_mode: str | None = None
    metadata: dict[str, Any] | None = None
    app_id: str = ""
    sub_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sub_id": self.sub_id,
            "options": self.options,
            "formats": list(self.formats),
            "callback": self.callback.to_json() if self.callback else None,
            "image_output_mode": self.image_output_mode,
            "metadata": self.metadata,
            "app_id": self.app_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Submission:
        cb = data.get("callback")
        return cls(
            options=data["options"],
            formats=tuple(data["formats"]),
            callback=Callback.from_json(cb) if cb else None,
            image_output_mode=data.get("image_output_mode"),
            metadata=data.get("metadata"),
            app_id=data.get("app_id", ""),
            sub_id=data["sub_id"],
        )


@dataclass(slots=True, eq=False)
class FileRecord:
    """One document of the Files API."""

    file_id: str
    seq: int
    created: float
    submission: Submission
    source_uri: str | None  # None for a direct upload
    filename: str
    custom_id: str | None = None
    job_id: str | None = None
    destination_uri: str | None = None
    destination_basename: str | None = None
    s3_region: str | None = None
    page_ranges: str | None = None
    upload: bytes | None = None  # held until processed
    status: str = "pending"
    modified: float = 0.0
    num_pages: int = 0
    num_pages_completed: int = 0
    # replaced, never mutated (so 200,000 records can share the empty defaults)
    formats: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    outputs: Mapping[str, bytes] = field(default_factory=lambda: _EMPTY)
    error: tuple[str, str] | None = None  # (error id, message)
    preset_error: tuple[str, str] | None = None  # found at submission, applied when processed
    deleted: bool = False
    live: PdfJob | None = None  # the pipeline's record while the document is processed

    # -- what polling shows

    def current_status(self) -> str:
        if self.live is None:
            return self.status
        status = self.live.status
        return {"received": "pending", "loaded": "pending"}.get(status, status)

    def format_states(self) -> dict[str, str]:
        if self.live is None:
            return dict(self.formats)
        conv = self.live.conversion_status
        done = self.live.status == "completed"
        states = {}
        for f in self.formats:
            if f in ALWAYS_FORMATS:
                states[f] = "completed" if done else "pending"
            else:
                states[f] = str(conv[f]["status"]) if f in conv else "pending"
        return states

    def pages(self) -> tuple[int, int]:
        if self.live is None:
            return self.num_pages, self.num_pages_completed
        return self.live.num_pages or 0, self.live.num_pages_completed

    def status_body(self) -> dict[str, Any]:
        """``GET /files/v1/{file_id}`` (also ``.../jobs/{job_id}/files/{custom_id}``)."""
        total, done = self.pages()
        status = self.current_status()
        if status == "completed":
            percent = 100.0
        else:
            percent = round(100.0 * done / total, 1) if total else 0.0
        body: dict[str, Any] = {
            "file_id": self.file_id,
            "status": status,
            "filename": self.filename,
            "custom_id": self.custom_id,
            "job_id": self.job_id,
            "num_pages": total,
            "num_pages_completed": done,
            "percent_done": percent,
            "format_primary": "mmd",
            "formats": self.format_states(),
            "created_at": iso(self.created),
            "modified_at": iso(self.modified or self.created),
        }
        if self.destination_uri is not None:
            body["destination_uri"] = self.destination_uri
            body["destination_basename"] = self.destination_basename or self.file_id
        if self.error is not None and status == "error":
            body["error"] = self.error[0]
            body["error_info"] = {"id": self.error[0], "message": self.error[1]}
        return body

    def listing_item(self, with_status: bool) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "filename": self.filename,
            "status": self.current_status() if with_status else None,
            "custom_id": self.custom_id,
        }

    def output(self, ext: str) -> bytes | None:
        if self.live is not None:
            return self.live.outputs.get(ext)
        return self.outputs.get(ext)

    def to_json(self) -> dict[str, Any]:
        """The record as the state journal keeps it (outputs and upload bytes live in files)."""
        return {
            "file_id": self.file_id,
            "seq": self.seq,
            "created": self.created,
            "source_uri": self.source_uri,
            "filename": self.filename,
            "custom_id": self.custom_id,
            "job_id": self.job_id,
            "destination_uri": self.destination_uri,
            "destination_basename": self.destination_basename,
            "s3_region": self.s3_region,
            "page_ranges": self.page_ranges,
            "preset_error": list(self.preset_error) if self.preset_error else None,
        }


@dataclass(slots=True, eq=False)
class JobRecord:
    """A Files API job: a named container of documents, open until finalized."""

    job_id: str
    seq: int
    created: float
    modified: float
    files: list[FileRecord] = field(default_factory=list)  # submission order (seq ascending)
    by_custom_id: dict[str, FileRecord] = field(default_factory=dict)
    completed: int = 0
    errored: int = 0
    finalized_at: float | None = None
    callbacks: list[Callback] = field(default_factory=list)
    notified: bool = False

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def done(self) -> bool:
        return self.completed + self.errored >= len(self.files)

    def status_body(self) -> dict[str, Any]:
        """``GET /files/v1/jobs/{job_id}``: status and counters."""
        return {
            "job_id": self.job_id,
            "status": "completed" if self.done else "processing",
            "file_count": self.file_count,
            "files_completed": self.completed,
            "files_errored": self.errored,
            "created_at": iso(self.created),
            "modified_at": iso(self.modified),
            "finalized_at": iso(self.finalized_at) if self.finalized_at is not None else None,
        }

    def add(self, rec: FileRecord, *, index_custom_id: bool) -> None:
        """Append ``rec``; ``index_custom_id`` makes it the file its custom_id names (False
        for a duplicate within one request, which stays listed as an error)."""
        self.files.append(rec)
        if rec.custom_id is not None and index_custom_id:
            self.by_custom_id[rec.custom_id] = rec
        self.modified = rec.created

    def remove(self, rec: FileRecord) -> None:
        index = self.page_after(rec.seq - 1)
        if index < len(self.files) and self.files[index] is rec:
            del self.files[index]
        else:  # pragma: no cover - defensive
            self.files = [f for f in self.files if f is not rec]
        if rec.custom_id is not None and self.by_custom_id.get(rec.custom_id) is rec:
            del self.by_custom_id[rec.custom_id]
        if rec.status == "completed":
            self.completed -= 1
        elif rec.status == "error":
            self.errored -= 1
        self.modified = time.time()

    def page_after(self, seq: int) -> int:
        """Index of the first file with a sequence number above ``seq``."""
        lo, hi = 0, len(self.files)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.files[mid].seq <= seq:
                lo = mid + 1
            else:
                hi = mid
        return lo


@dataclass
class DataSource:
    """A registered bucket / container (secrets are kept but never returned)."""

    data_source_id: str
    provider: str  # aws | azure | gcp
    bucket: str
    auth_method: str
    details: dict[str, Any]
    name: str | None
    region: str | None
    created: float
    secret: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "data_source_id": self.data_source_id,
            "name": self.name,
            "provider": self.provider,
            "bucket": self.bucket,
            "region": self.region,
            "auth_method": self.auth_method,
            "created_at": iso(self.created),
        }

    @property
    def storage_account(self) -> str | None:
        value = self.details.get("storage_account")
        return value if isinstance(value, str) else None


class FilesRegion:
    """What one region's Files API remembers (regions never share documents)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.files: dict[str, FileRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.data_sources: dict[str, DataSource] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> response body
        self.queue: deque[FileRecord] = deque()
        self.workers = 0
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def bump_seq(self, seq: int) -> None:
        self._seq = max(self._seq, seq)

    def job(self, job_id: str, now: float) -> tuple[JobRecord, bool]:
        """The job named ``job_id``, created if new; ``True`` if it was created."""
        found = self.jobs.get(job_id)
        if found is not None:
            return found, False
        job = JobRecord(job_id=job_id, seq=self.next_seq(), created=now, modified=now)
        self.jobs[job_id] = job
        return job, True

    def find_source(
        self, provider: str, bucket: str, account: str | None = None
    ) -> DataSource | None:
        for ds in self.data_sources.values():
            same = ds.provider == provider and ds.bucket == bucket
            if same and (provider != "azure" or ds.storage_account == account):
                return ds
        return None


class FilesAccount:
    """Account-wide Files API state: the webhook signing secret (one per application) and the
    group's ``external_id``, shared by every region like API-key authentication is."""

    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = {name: FilesRegion(name) for name in regions}
        self.signing_secret: str | None = None
        self.external_id: str | None = None
        self.test_deliveries: deque[float] = deque()  # webhook-config/test, last minute
        self.loaded = False
        self.journal: Journal | None = None  # set when files_state_dir is configured

    def secret(self) -> str:
        if self.signing_secret is None:
            self.signing_secret = "whsec_" + secrets.token_urlsafe(24)
        return self.signing_secret

    def group_external_id(self) -> str:
        if self.external_id is None:
            self.external_id = "mpx-" + secrets.token_hex(12)
        return self.external_id


def new_file_id() -> str:
    return str(uuid.uuid4())


def new_file_ids(count: int) -> list[str]:
    """``count`` random UUID4 strings at once (a 200,000-item job needs them fast)."""
    raw = secrets.token_hex(16 * count)
    out = []
    for i in range(0, 32 * count, 32):
        h = raw[i : i + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return out
