"""Optional persistence of the local Files API (``files_state_dir``): jobs, documents,
results, data sources, idempotency keys and the webhook secret survive a server restart.

Layout of the directory::

    journal.jsonl          one JSON object per change, appended (and flushed) in order
    uploads/<file_id>      bytes of direct uploads not yet processed
    outputs/<file_id>/<ext> results of completed documents

On start the journal is replayed; documents that were not finished are queued again (from
their ``source_uri``, or from the saved upload). A crash loses at most the entry being
written: a document that was mid-way is processed again from the start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ._files_store import (
    TERMINAL,
    Callback,
    DataSource,
    FileRecord,
    FilesAccount,
    FilesRegion,
    JobRecord,
    Submission,
)

logger = logging.getLogger("mathpix_nb.server")


class Journal:
    """Appends change entries to ``journal.jsonl`` from a worker thread, in call order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "uploads").mkdir(parents=True, exist_ok=True)
        (root / "outputs").mkdir(parents=True, exist_ok=True)
        self._fh = (root / "journal.jsonl").open("a", encoding="utf-8")
        self._lock = anyio.Lock()
        self._thread_lock = threading.Lock()
        self._account: tuple[str | None, str | None] = (None, None)

    def _write_sync(
        self, entries: list[dict[str, Any]], files: Mapping[Path, bytes | None]
    ) -> None:
        with self._thread_lock:
            for path, data in files.items():
                if data is None:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".part")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            for entry in entries:
                self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._fh.flush()

    async def _write(
        self, entries: list[dict[str, Any]], files: Mapping[Path, bytes | None] | None = None
    ) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._write_sync, entries, files or {})

    # -- the changes

    async def submission(
        self,
        region: str,
        sub: Submission,
        recs: list[FileRecord],
        new_job: JobRecord | None,
        idem_key: str | None,
        response: dict[str, Any],
    ) -> None:
        entries: list[dict[str, Any]] = [{"k": "sub", "r": region, "sub": sub.to_json()}]
        if new_job is not None:
            entries.append(_job_entry(region, new_job))
        if recs:
            entries.append(
                {"k": "files", "r": region, "sub": sub.sub_id, "files": [r.to_json() for r in recs]}
            )
        if idem_key is not None:
            entries.append({"k": "idem", "r": region, "key": idem_key, "response": response})
        uploads = {
            self.root / "uploads" / r.file_id: r.upload for r in recs if r.upload is not None
        }
        await self._write(entries, uploads)

    async def job(self, region: str, job: JobRecord) -> None:
        await self._write([_job_entry(region, job)])

    async def finished(self, region: str, rec: FileRecord) -> None:
        out_dir = self.root / "outputs" / rec.file_id
        files: dict[Path, bytes | None] = {out_dir / ext: data for ext, data in rec.outputs.items()}
        files[self.root / "uploads" / rec.file_id] = None
        entry = {
            "k": "done",
            "r": region,
            "id": rec.file_id,
            "status": rec.status,
            "error": list(rec.error) if rec.error else None,
            "formats": rec.formats,
            "pages": [rec.num_pages, rec.num_pages_completed],
            "modified": rec.modified,
            "outputs": sorted(rec.outputs),
        }
        await self._write([entry], files)

    async def deleted(self, region: str, rec: FileRecord) -> None:
        await self._write(
            [{"k": "del", "r": region, "id": rec.file_id}],
            {self.root / "outputs" / rec.file_id: None},
        )

    async def data_source(self, region: str, ds: DataSource) -> None:
        entry = {
            "k": "ds",
            "r": region,
            "ds": {
                "data_source_id": ds.data_source_id,
                "provider": ds.provider,
                "bucket": ds.bucket,
                "auth_method": ds.auth_method,
                "details": ds.details,
                "name": ds.name,
                "region": ds.region,
                "created": ds.created,
                "secret": ds.secret,
            },
        }
        await self._write([entry])

    async def data_source_deleted(self, region: str, ds: DataSource) -> None:
        await self._write([{"k": "ds_del", "r": region, "id": ds.data_source_id}])

    async def account(self, account: FilesAccount) -> None:
        values = (account.signing_secret, account.external_id)
        if values == self._account:
            return
        self._account = values
        await self._write([{"k": "account", "secret": values[0], "external_id": values[1]}])


def _job_entry(region: str, job: JobRecord) -> dict[str, Any]:
    return {
        "k": "job",
        "r": region,
        "job_id": job.job_id,
        "seq": job.seq,
        "created": job.created,
        "finalized_at": job.finalized_at,
        "callbacks": [c.to_json() for c in job.callbacks],
    }


def load(account: FilesAccount, directory: str | os.PathLike[str]) -> list[FilesRegion]:
    """Replay ``directory``'s journal into ``account`` and open it for appending; returns the
    regions whose queues got unfinished documents back."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "journal.jsonl"
    subs: dict[str, Submission] = {}
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    _apply(account, subs, root, json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:  # a torn last line after a crash
                    logger.warning("files_state_dir: skipping journal line %d (%s)", number, exc)
    requeued = []
    for region in account.regions.values():
        for job in region.jobs.values():
            job.completed = sum(1 for f in job.files if f.status == "completed")
            job.errored = sum(1 for f in job.files if f.status == "error")
            job.notified = job.finalized_at is not None and job.done
        pending = [
            rec
            for rec in sorted(region.files.values(), key=lambda r: r.seq)
            if not rec.deleted and rec.status not in TERMINAL
        ]
        for rec in pending:
            upload = root / "uploads" / rec.file_id
            if rec.source_uri is None and upload.exists():
                rec.upload = upload.read_bytes()
        if pending:
            region.queue.extend(pending)
            requeued.append(region)
    account.journal = Journal(root)
    account.journal._account = (account.signing_secret, account.external_id)
    return requeued


def _apply(
    account: FilesAccount, subs: dict[str, Submission], root: Path, entry: dict[str, Any]
) -> None:
    kind = entry["k"]
    if kind == "account":
        account.signing_secret = entry.get("secret") or account.signing_secret
        account.external_id = entry.get("external_id") or account.external_id
        return
    region = account.regions.get(entry["r"])
    if region is None:
        return  # a region this server no longer serves
    if kind == "sub":
        sub = Submission.from_json(entry["sub"])
        subs[sub.sub_id] = sub
    elif kind == "job":
        job = region.jobs.get(entry["job_id"])
        if job is None:
            job = JobRecord(
                job_id=entry["job_id"],
                seq=entry["seq"],
                created=entry["created"],
                modified=entry["created"],
            )
            region.jobs[job.job_id] = job
            region.bump_seq(job.seq)
        job.finalized_at = entry.get("finalized_at")
        job.callbacks = [Callback.from_json(c) for c in entry.get("callbacks", [])]
    elif kind == "files":
        sub = subs[entry["sub"]]
        for data in entry["files"]:
            rec = FileRecord(
                file_id=data["file_id"],
                seq=data["seq"],
                created=data["created"],
                modified=data["created"],
                submission=sub,
                source_uri=data["source_uri"],
                filename=data["filename"],
                custom_id=data["custom_id"],
                job_id=data["job_id"],
                destination_uri=data["destination_uri"],
                destination_basename=data["destination_basename"],
                s3_region=data["s3_region"],
                page_ranges=data["page_ranges"],
                preset_error=tuple(data["preset_error"]) if data["preset_error"] else None,
            )
            rec.formats = dict.fromkeys(sub.formats, "pending")
            region.files[rec.file_id] = rec
            region.bump_seq(rec.seq)
            if rec.job_id is not None:
                job, _ = region.job(rec.job_id, rec.created)
                duplicate = (
                    rec.preset_error is not None and rec.preset_error[0] == "duplicate_custom_id"
                )
                job.add(rec, index_custom_id=not duplicate)
    elif kind == "done":
        rec = region.files[entry["id"]]
        rec.status = entry["status"]
        rec.error = tuple(entry["error"]) if entry["error"] else None
        rec.formats = dict(entry["formats"])
        rec.num_pages, rec.num_pages_completed = entry["pages"]
        rec.modified = entry["modified"]
        out_dir = root / "outputs" / rec.file_id
        rec.outputs = {
            ext: (out_dir / ext).read_bytes()
            for ext in entry["outputs"]
            if (out_dir / ext).exists()
        }
    elif kind == "del":
        rec = region.files[entry["id"]]
        rec.deleted = True
        rec.outputs = {}
        job = region.jobs.get(rec.job_id) if rec.job_id is not None else None
        if job is not None and rec in job.files:
            job.files.remove(rec)
            if job.by_custom_id.get(rec.custom_id or "") is rec:
                del job.by_custom_id[rec.custom_id or ""]
    elif kind == "idem":
        region.idempotency[entry["key"]] = entry["response"]
    elif kind == "ds":
        d = entry["ds"]
        region.data_sources[d["data_source_id"]] = DataSource(**d)
    elif kind == "ds_del":
        region.data_sources.pop(entry["id"], None)
