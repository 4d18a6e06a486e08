"""``mathpix-nb journal check|repair|forget [PATH]``: look after a bulk journal.

* ``check``: can the file be used? Its jobs by state; exit 1 if it is corrupt.
* ``repair``: copy every row SQLite can still read into a fresh file; the damaged one is kept
  as ``<file>.corrupt-<time>``. Rows that could not be read are paid again on the next run.
* ``forget``: drop what can be forgotten: ``--unfinished`` (jobs submitting/submitted by no
  live run: a rerun looks them up or sends them again), ``--failed`` (failed jobs are retried),
  ``--all`` (the whole file).

Exit codes: 0 done, 1 the journal is corrupt (check) or could not be repaired, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._journal import Journal, JournalError, default_journal_path, process_alive

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mathpix-nb journal", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("check", "is the journal usable; jobs by state"),
        ("repair", "rebuild it from every readable row"),
        ("forget", "drop unfinished / failed jobs, or everything"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("path", nargs="?", help="journal file (default: the bulk default)")
        if name == "forget":
            what = cmd.add_mutually_exclusive_group(required=True)
            what.add_argument("--unfinished", action="store_true")
            what.add_argument("--failed", action="store_true")
            what.add_argument("--all", action="store_true")
    return p


def _check(path: Path) -> int:
    try:
        with Journal(path) as j:
            problem = j._conn.execute("PRAGMA integrity_check").fetchone()[0]
            counts = j.counts()
    except (JournalError, sqlite3.DatabaseError) as exc:
        print(f"{path}: CORRUPT - {exc}", file=sys.stderr)
        return 1
    if problem != "ok":
        print(f"{path}: CORRUPT - {problem}; run `mathpix-nb journal repair {path}`")
        return 1
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
    print(f"{path}: ok - {states}")
    return 0


def _repair(path: Path) -> int:
    if not path.exists():
        print(f"{path} does not exist; nothing to repair", file=sys.stderr)
        return 2
    kept, rows = path.with_name(f"{path.name}.corrupt-{int(time.time())}"), []
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cur = src.execute(f"SELECT {', '.join(Journal._COLS)} FROM jobs")
            while True:
                try:
                    batch = cur.fetchmany(500)
                except sqlite3.DatabaseError:
                    break  # the rest is unreadable
                if not batch:
                    break
                rows.extend(batch)
        finally:
            src.close()
    except sqlite3.DatabaseError:
        rows = []
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.rename(kept.with_name(kept.name + extra.name[len(path.name) :]))
    path.rename(kept)
    with Journal(path) as j:
        marks = ", ".join("?" * len(Journal._COLS))
        with j._lock:
            j._conn.executemany(f"INSERT OR REPLACE INTO jobs VALUES ({marks})", rows)
    print(f"{path}: rebuilt with {len(rows)} readable rows; the damaged file is {kept}")
    return 0


def _forget(path: Path, *, unfinished: bool, failed: bool) -> int:
    with Journal(path) as j, j._lock:
        conn = j._conn
        if failed:
            n = conn.execute("DELETE FROM jobs WHERE state = 'failed'").rowcount
        elif unfinished:
            keys = [
                key
                for key, owner in conn.execute(
                    "SELECT key, owner FROM jobs WHERE state IN ('submitting', 'submitted')"
                )
                if not process_alive(owner)
            ]
            conn.executemany("DELETE FROM jobs WHERE key = ?", [(k,) for k in keys])
            n = len(keys)
        else:
            n = conn.execute("DELETE FROM jobs").rowcount
    print(f"{path}: forgot {n} jobs")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; its exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    path = Path(args.path).expanduser() if args.path else default_journal_path()
    if not path.is_file():
        print(f"mathpix-nb journal: {path} is not a journal file (no such file)", file=sys.stderr)
        return 2
    if args.command == "check":
        return _check(path)
    if args.command == "repair":
        return _repair(path)
    try:
        return _forget(path, unfinished=args.unfinished, failed=args.failed)
    except JournalError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
