"""On-disk journal and result cache for OCR jobs (SQLite, standard library only).

Why: a bulk run must survive a crash, ``kill -9``, a kernel restart or Ctrl-C without losing a
row or paying for an image twice, and identical images (in one run or across runs) must be
sent once. Every job is written here *before* it is sent, so a rerun knows exactly what
happened to it.

A job is identified by a **key**: the sha256 of the image content plus the request options,
the crop and the API region (:meth:`Journal.make_key`). Its life::

    (absent) --claim()--> submitting --submitted()--> submitted --done()--> done
                              |                           |                   (cached)
                              |                           '--failed()--> failed (permanent: cached)
                              '--release()--> (absent)         (transient failures release it)

* ``submitting``: the request may or may not have reached the API (fate unknown after a crash
  or a dropped connection); a rerun looks it up by its ``row_tag`` before sending it again.
* ``submitted``: the API gave a ``request_id``; a rerun polls for it instead of resubmitting.
* ``done`` / ``failed`` with ``permanent=True``: final; :meth:`Journal.lookup` returns it.

API (all methods are thread-safe; several processes may share one file)::

    j = Journal()                          # $MATHPIX_NB_HOME/journal.sqlite3 (~/.mathpix_nb)
    key = Journal.make_key(sha256_hex, {"formats": ["text"]}, region="global", crop=None)
    entry = j.get(key)                     # JournalEntry | None
    if j.claim(key, run_tag=..., row_tag=..., base_url=...):   # False: someone else owns it
        ...send...; j.submitted(key, request_id)
    j.done(key, result_dict, request_id=...)  # or j.failed(key, error_id, message)
    j.lookup(key)                          # the cached result dict of a done job, else None
    j.pending()                            # submitting/submitted entries (for recovery)

The LangChain loader uses the same file through ``lookup``/``done`` as a plain result cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Journal",
    "JournalEntry",
    "JournalError",
    "RemoteJob",
    "default_journal_path",
    "process_alive",
    "set_aside",
]

State = Literal["submitting", "submitted", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key          TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    request_id   TEXT,
    run_tag      TEXT,
    row_tag      TEXT,
    base_url     TEXT,
    source       TEXT,
    owner        TEXT,
    result       TEXT,
    error_id     TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""


def default_journal_path() -> Path:
    """``$MATHPIX_NB_HOME/journal.sqlite3`` (default home: ``~/.mathpix_nb``)."""
    home = os.environ.get("MATHPIX_NB_HOME") or os.path.join(os.path.expanduser("~"), ".mathpix_nb")
    return Path(home) / "journal.sqlite3"


# Owners (``host:pid:instance``) of the Journal objects open in this process.
_LIVE_OWNERS: set[str] = set()


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_alive(owner: str | None) -> bool:
    """True if ``owner`` (``host:pid:instance`` from :attr:`JournalEntry.owner`) is still at work.

    In this process: its Journal is still open (two runs in two threads are told apart).
    Elsewhere on this host: its process exists. On another host: assumed alive.
    """
    if not owner or owner.count(":") < 1:
        return False
    host, pid_s, *_ = owner.split(":")
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    if pid == os.getpid():
        return owner in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    # A zombie (killed child not yet reaped) still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class JournalEntry:
    """One job as recorded in the journal."""

    key: str
    state: State
    request_id: str | None
    run_tag: str | None
    row_tag: str | None
    base_url: str | None
    source: str | None
    owner: str | None
    result: dict[str, Any] | None
    error_id: str | None
    error: str | None
    attempts: int
    updated_at: float

    @property
    def final(self) -> bool:
        """Done, or failed for a reason that would not change on a retry."""
        return self.state in ("done", "failed")


class JournalError(OSError):
    """The journal file cannot be used (corrupt, not a journal, unwritable); names the file
    and the fix. ``corrupt``: the file is damaged or not a database (not merely locked)."""

    corrupt: bool = False


def _is_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text


def set_aside(path: Path) -> Path:
    """Rename a damaged journal (and its ``-wal`` / ``-shm``) to ``<name>.corrupt-<time>``,
    kept for inspection; the new name."""
    kept = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.rename(kept.with_name(kept.name + extra.name[len(path.name) :]))
    path.rename(kept)
    return kept


def _unusable(path: Path | None, exc: BaseException) -> JournalError:
    where = str(path) if path is not None else ":memory:"
    err = _journal_error(where, exc)
    err.corrupt = _is_corrupt(exc)
    return err


def _journal_error(where: str, exc: BaseException) -> JournalError:
    return JournalError(
        f"the journal {where} cannot be used ({type(exc).__name__}: {exc}). Fix: run "
        f"`mathpix-nb journal check {where}` / `mathpix-nb journal repair {where}` (keeps the "
        "rows it can read), delete the file (a rerun then recovers every job Mathpix accepted "
        "from v3/ocr-results and pays for none of them again), or pass journal= / --journal "
        "another path."
    )


class Journal:
    """SQLite journal + result cache for OCR jobs; see the module docstring for the model.

    Args:
        path: database file; default :func:`default_journal_path`. ``":memory:"`` works for
            throwaway use (no resume).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None and str(path) != ":memory:" else None
        if path is None:
            self.path = default_journal_path()
        target = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OSError(
                    f"cannot create the journal directory {self.path.parent}: {exc}. "
                    "Set MATHPIX_NB_HOME or pass journal=<writable path>."
                ) from exc
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                target, timeout=60.0, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        try:
            self._conn.execute("PRAGMA busy_timeout=60000")
            if self.path is not None:
                # WAL + synchronous=NORMAL: every commit survives a process crash (kill -9);
                # only an OS crash/power loss could drop the last few transactions.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._lock:
                self._conn.executescript(_SCHEMA)
                self._conn.execute("SELECT key FROM jobs LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise _unusable(self.path, exc) from None
        self.owner = _new_owner()
        _LIVE_OWNERS.add(self.owner)

    @classmethod
    def open_or_set_aside(cls, path: str | os.PathLike[str] | None = None) -> Journal:
        """Open ``path``; a corrupt file is set aside (:func:`set_aside`, with a warning) and a
        new journal started in its place. Safe because the journal is only a cache: a bulk
        run reads what Mathpix accepted back from v3/ocr-results and pays for none of it
        again (except ``improve_mathpix=False`` jobs, which Mathpix never stores)."""
        try:
            return cls(path)
        except JournalError as exc:
            target = Path(path) if path is not None else default_journal_path()
            if not exc.corrupt or str(path) == ":memory:" or not target.is_file():
                raise
            kept = set_aside(target)
            msg = (
                f"mathpix_nb: the journal {target} is damaged; it was set aside as {kept} and a "
                "new one started (a bulk run recovers accepted jobs from Mathpix's "
                "v3/ocr-results and pays for none of them again)"
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            return cls(path)

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def make_key(
        content_sha256: str,
        options: Mapping[str, Any] | None = None,
        *,
        region: str = "global",
        crop: Iterable[int] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """A stable job key: content hash + request options + crop + API region (+ extra).

        Options are canonicalised (sorted keys) so dict order does not matter.

        >>> a = Journal.make_key("ab" * 32, {"formats": ["text"], "rm_spaces": True})
        >>> a == Journal.make_key("ab" * 32, {"rm_spaces": True, "formats": ["text"]})
        True
        >>> a == Journal.make_key("ab" * 32, {"formats": ["text"]}, region="eu")
        False
        """
        payload = {
            "content": content_sha256,
            "options": dict(options or {}),
            "region": region,
            "crop": list(crop) if crop is not None else None,
            "extra": dict(extra or {}),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> JournalEntry | None:
        """The entry for ``key``, or None if the journal has never seen it."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._entry(row)

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The cached API result of a done job (the v3/text response body), else None."""
        entry = self.get(key)
        return entry.result if entry is not None and entry.state == "done" else None

    def pending(self, *, base_url: str | None = None) -> list[JournalEntry]:
        """Jobs submitted (or being submitted) but not finished, optionally for one API URL."""
        sql = "SELECT * FROM jobs WHERE state IN ('submitting', 'submitted')"
        args: tuple[Any, ...] = ()
        if base_url is not None:
            sql += " AND base_url = ?"
            args = (base_url,)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [self._entry(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: n for state, n in rows}

    # -- writes ----------------------------------------------------------------------------

    def claim(
        self,
        key: str,
        *,
        run_tag: str | None = None,
        row_tag: str | None = None,
        base_url: str | None = None,
        source: str | None = None,
        force: bool = False,
    ) -> bool:
        """Record the intent to send ``key`` (state ``submitting``), durably, before sending.

        Returns False when the job already exists in a state that must not be resent
        (``submitted``/``done``/``failed``, or ``submitting`` owned by a live process), unless
        ``force`` (the caller checked that its earlier submission never landed).
        """
        now = time.time()
        with self._lock:
            cur = self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT * FROM jobs WHERE key = ?", (key,)).fetchone()
                if row is not None and not force:
                    entry = self._entry(row)
                    mine = entry.owner == self.owner
                    if entry.state != "submitting" or (not mine and process_alive(entry.owner)):
                        self._conn.execute("COMMIT")
                        return False
                attempts = 0 if row is None else self._entry(row).attempts
                self._conn.execute(
                    "INSERT OR REPLACE INTO jobs (key, state, request_id, run_tag, row_tag,"
                    " base_url, source, owner, result, error_id, error, attempts, created_at,"
                    " updated_at) VALUES (?, 'submitting', NULL, ?, ?, ?, ?, ?, NULL, NULL, NULL,"
                    " ?, ?, ?)",
                    (key, run_tag, row_tag, base_url, source, self.owner, attempts + 1, now, now),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return True

    def adopt(self, key: str) -> None:
        """Take over an existing entry (e.g. the ``submitting`` job of a run that died)."""
        self._update(key, owner=self.owner)

    def submitted(
        self, key: str, request_id: str, *, run_tag: str | None = None, row_tag: str | None = None
    ) -> None:
        """The API accepted the job and answered with ``request_id``."""
        fields: dict[str, Any] = {"state": "submitted", "request_id": request_id}
        if run_tag is not None:
            fields["run_tag"] = run_tag
        if row_tag is not None:
            fields["row_tag"] = row_tag
        self._update(key, **fields)

    def done(
        self,
        key: str,
        result: Mapping[str, Any],
        *,
        request_id: str | None = None,
        source: str | None = None,
    ) -> None:
        """Store the final result (the API's response body); creates the entry if needed."""
        now = time.time()
        blob = json.dumps(dict(result), separators=(",", ":"))
        with self._lock:
            self._conn.execute(
                "INSERT INTO jobs (key, state, request_id, source, owner, result, created_at,"
                " updated_at) VALUES (?, 'done', ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " state='done', request_id=COALESCE(excluded.request_id, jobs.request_id),"
                " result=excluded.result, error_id=NULL, error=NULL,"
                " updated_at=excluded.updated_at",
                (key, request_id, source, self.owner, blob, now, now),
            )

    def failed(
        self,
        key: str,
        error_id: str,
        message: str,
        *,
        request_id: str | None = None,
        permanent: bool = True,
    ) -> None:
        """Record a failure. Permanent failures are cached (a retry would give the same answer,
        e.g. ``image_no_content``); transient ones release the job so a rerun sends it again."""
        if not permanent:
            self.release(key)
            return
        now = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO jobs (key, state, request_id, owner, error_id, error, created_at,"
                " updated_at) VALUES (?, 'failed', ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " state='failed', request_id=COALESCE(excluded.request_id, jobs.request_id),"
                " error_id=excluded.error_id, error=excluded.error, updated_at=excluded.updated_at",
                (key, request_id, self.owner, error_id, message, now, now),
            )

    def release(self, key: str) -> None:
        """Forget an unfinished job (it never reached the API, or failed transiently)."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM jobs WHERE key = ? AND state IN ('submitting', 'submitted')", (key,)
            )

    def forget(self, key: str) -> None:
        """Drop a job whatever its state (e.g. to force a fresh OCR of a cached image)."""
        with self._lock:
            self._conn.execute("DELETE FROM jobs WHERE key = ?", (key,))

    def close(self) -> None:
        _LIVE_OWNERS.discard(self.owner)
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path) if self.path else ':memory:'!r})"

    # -- internals -------------------------------------------------------------------------

    def _update(self, key: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            self._conn.execute(f"UPDATE jobs SET {cols} WHERE key = ?", (*fields.values(), key))

    _COLS = (
        "key",
        "state",
        "request_id",
        "run_tag",
        "row_tag",
        "base_url",
        "source",
        "owner",
        "result",
        "error_id",
        "error",
        "attempts",
        "created_at",
        "updated_at",
    )

    def _entry(self, row: tuple[Any, ...]) -> JournalEntry:
        d = dict(zip(self._COLS, row, strict=True))
        return JournalEntry(
            key=d["key"],
            state=d["state"],
            request_id=d["request_id"],
            run_tag=d["run_tag"],
            row_tag=d["row_tag"],
            base_url=d["base_url"],
            source=d["source"],
            owner=d["owner"],
            result=json.loads(d["result"]) if d["result"] else None,
            error_id=d["error_id"],
            error=d["error"],
            attempts=d["attempts"],
            updated_at=d["updated_at"],
        )

    # -- corrections (the review view's hand fixes) -----------------------------------------
    # Kept in their own table, created on first use, so journals written before it still open
    # and the jobs table is never touched. A correction is keyed by what the caller names the
    # row by (the review view: the image content hash), and survives reruns of a bulk job.

    _CORRECTIONS_SCHEMA = (
        "CREATE TABLE IF NOT EXISTS corrections (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
        " request_id TEXT, source TEXT, updated_at REAL NOT NULL)"
    )

    def _corrections_ready(self) -> None:
        with self._lock:
            if not getattr(self, "_has_corrections", False):
                self._conn.execute(self._CORRECTIONS_SCHEMA)
                self._has_corrections = True

    def correct(
        self, key: str, text: str, *, request_id: str | None = None, source: str | None = None
    ) -> None:
        """Record a hand correction of the text of ``key`` (replaces an earlier one)."""
        if not isinstance(text, str):
            raise TypeError(f"a correction is text, not {type(text).__name__}")
        self._corrections_ready()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO corrections (key, text, request_id, source, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, text, request_id, source, time.time()),
            )

    def correction(self, key: str) -> Correction | None:
        """The correction recorded for ``key``, or None."""
        self._corrections_ready()
        with self._lock:
            row = self._conn.execute(
                "SELECT key, text, request_id, source, updated_at FROM corrections WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else Correction(*row)

    def corrections(self) -> dict[str, Correction]:
        """Every correction, by key (oldest first)."""
        self._corrections_ready()
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, text, request_id, source, updated_at FROM corrections"
                " ORDER BY updated_at"
            ).fetchall()
        return {row[0]: Correction(*row) for row in rows}

    def uncorrect(self, key: str) -> None:
        """Drop the correction of ``key`` (the OCR text stands again)."""
        self._corrections_ready()
        with self._lock:
            self._conn.execute("DELETE FROM corrections WHERE key = ?", (key,))

    # -- the API's record, cached (see mathpix_nb.bulk: the API is the journal of record) -----
    # ``remote`` holds what v3/ocr-results said about the jobs of a dataset (by row tag), and
    # ``synced`` until when (local clock) a dataset's listing has been read into it, so the
    # next run lists only what is newer. Both are created on first use.

    _REMOTE_SCHEMA = """
    CREATE TABLE IF NOT EXISTS remote (
        row_tag TEXT NOT NULL, base_url TEXT NOT NULL, request_id TEXT NOT NULL, result TEXT,
        run_tag TEXT, batch_tag TEXT, PRIMARY KEY (row_tag, base_url));
    CREATE TABLE IF NOT EXISTS synced (
        dataset TEXT NOT NULL, base_url TEXT NOT NULL, until REAL NOT NULL,
        PRIMARY KEY (dataset, base_url));
    CREATE INDEX IF NOT EXISTS jobs_row_tag ON jobs(row_tag);
    """

    def _remote_ready(self) -> None:
        with self._lock:
            if not getattr(self, "_has_remote", False):
                self._conn.executescript(self._REMOTE_SCHEMA)
                self._has_remote = True

    def remember(self, jobs: Iterable[RemoteJob], *, base_url: str) -> int:
        """Cache jobs read from v3/ocr-results; a finished answer is never replaced by a
        pending or failed one, and a job this journal already holds as done is not copied
        (the cache holds only what the journal lacks). Returns how many were given."""
        self._remote_ready()
        rows = [
            (
                j.row_tag,
                base_url,
                j.request_id,
                None if j.result is None else json.dumps(j.result, separators=(",", ":")),
                j.run_tag,
                j.batch_tag,
                int(j.ok),
            )
            for j in jobs
        ]
        with self._lock:
            self._conn.executemany(
                "INSERT INTO remote (row_tag, base_url, request_id, result, run_tag, batch_tag)"
                " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM jobs"
                " WHERE jobs.row_tag = ?1 AND jobs.state = 'done' AND jobs.base_url = ?2)"
                " ON CONFLICT(row_tag, base_url) DO UPDATE SET"
                " request_id=excluded.request_id, result=excluded.result,"
                " run_tag=excluded.run_tag, batch_tag=excluded.batch_tag"
                " WHERE ?7 OR remote.result IS NULL",
                rows,
            )
        return len(rows)

    def remote(self, row_tag: str, *, base_url: str) -> RemoteJob | None:
        """What v3/ocr-results said about the job tagged ``row_tag`` (cached), or None."""
        self._remote_ready()
        with self._lock:
            row = self._conn.execute(
                "SELECT row_tag, request_id, result, run_tag, batch_tag FROM remote"
                " WHERE row_tag = ? AND base_url = ?",
                (row_tag, base_url),
            ).fetchone()
        if row is None:
            return None
        return RemoteJob(row[0], row[1], json.loads(row[2]) if row[2] else None, row[3], row[4])

    def synced_until(self, dataset: str, *, base_url: str) -> float | None:
        """Local time up to which ``dataset``'s listing has been cached here, or None."""
        self._remote_ready()
        with self._lock:
            row = self._conn.execute(
                "SELECT until FROM synced WHERE dataset = ? AND base_url = ?", (dataset, base_url)
            ).fetchone()
        return None if row is None else float(row[0])

    def mark_synced(self, dataset: str, *, base_url: str, until: float) -> None:
        """Record that ``dataset``'s jobs received before ``until`` (local time) are cached."""
        self._remote_ready()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO synced (dataset, base_url, until) VALUES (?, ?, ?)",
                (dataset, base_url, until),
            )

    # -- maintenance (``mathpix-nb journal``) ------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"`` or the first problem found."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def raw_rows(self) -> list[tuple[Any, ...]]:
        """Every job as a row of :attr:`COLUMNS` (to rebuild a damaged file)."""
        with self._lock:
            return self._conn.execute(f"SELECT {', '.join(self._COLS)} FROM jobs").fetchall()

    def restore_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Write rows read by :meth:`raw_rows` (or from a damaged file) back, replacing."""
        marks = ", ".join("?" * len(self._COLS))
        with self._lock:
            self._conn.executemany(f"INSERT OR REPLACE INTO jobs VALUES ({marks})", list(rows))

    def forget_where(self, *, failed: bool = False, unfinished: bool = False) -> int:
        """Drop failed jobs, or unfinished ones whose owner is gone, or (neither) every job;
        the number dropped."""
        with self._lock:
            if failed:
                return int(self._conn.execute("DELETE FROM jobs WHERE state = 'failed'").rowcount)
            if unfinished:
                keys = [
                    key
                    for key, owner in self._conn.execute(
                        "SELECT key, owner FROM jobs WHERE state IN ('submitting', 'submitted')"
                    )
                    if not process_alive(owner)
                ]
                self._conn.executemany("DELETE FROM jobs WHERE key = ?", [(k,) for k in keys])
                return len(keys)
            return int(self._conn.execute("DELETE FROM jobs").rowcount)

    #: the column order of :meth:`raw_rows`
    COLUMNS = _COLS


@dataclass(frozen=True)
class RemoteJob:
    """One job as v3/ocr-results lists it: found by its row tag, finished (``result``) or
    still processing (``result`` None), and the run/batch tags it can be polled by."""

    row_tag: str
    request_id: str
    result: dict[str, Any] | None
    run_tag: str | None = None
    batch_tag: str | None = None

    @property
    def ok(self) -> bool:
        """A finished answer without an error."""
        r = self.result
        return r is not None and not r.get("error") and not isinstance(r.get("error_info"), dict)


@dataclass(frozen=True)
class Correction:
    """A hand correction kept in the journal: the fixed text of one row, and where it was."""

    key: str
    text: str
    request_id: str | None
    source: str | None
    updated_at: float
