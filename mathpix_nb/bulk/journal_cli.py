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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._journal import Journal, JournalError, default_journal_path, set_aside

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
            problem = j.integrity_check()
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
    rows: list[tuple[Any, ...]] = []
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cur = src.execute(f"SELECT {', '.join(Journal.COLUMNS)} FROM jobs")
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
    kept = set_aside(path)
    with Journal(path) as j:
        j.restore_rows(rows)
    print(f"{path}: rebuilt with {len(rows)} readable rows; the damaged file is {kept}")
    return 0


def _forget(path: Path, *, unfinished: bool, failed: bool) -> int:
    with Journal(path) as j:
        n = j.forget_where(failed=failed, unfinished=unfinished)
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
