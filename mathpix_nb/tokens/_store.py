"""The proxy's small SQLite record: who created which id, and how much each caller used.

Two tables, nothing else:

* ``owned(caller, kind, id, created, pages)``: the PDFs, conversions, batches and app tokens
  (as SHA-256 digests, never the token) a caller created through this instance, so another
  caller's id is answered like an unknown one. ``pages`` is the page count charged once the
  service first saw it.
* ``usage(caller, period, what, count)``: images and PDF pages per UTC day (``d:2026-12-02``)
  and month (``m:2026-12``), for the quotas.

The file survives restarts (ownership and quotas carry over); ``":memory:"`` keeps it in the
process. Calls are short and serialised by one lock, so the async app may call them inline.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owned (
    caller TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    created REAL NOT NULL, pages INTEGER,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS owned_by_caller ON owned (caller, kind, created);
CREATE TABLE IF NOT EXISTS usage (
    caller TEXT NOT NULL, period TEXT NOT NULL, what TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (caller, period, what)
);
"""


def token_digest(token: str) -> str:
    """How an app token is kept in the record (never the token itself)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Quotas:
    """Per-caller budgets (None: unlimited): images and PDF pages per UTC day and month."""

    images_per_day: int | None = None
    images_per_month: int | None = None
    pages_per_day: int | None = None
    pages_per_month: int | None = None

    def limits(self, what: str) -> list[tuple[str, str, int]]:
        """(period kind "d"/"m", Mathpix-style limit_name, limit) for ``what`` (image/page)."""
        day, month = (
            (self.images_per_day, self.images_per_month)
            if what == "image"
            else (self.pages_per_day, self.pages_per_month)
        )
        out = []
        if day is not None:
            out.append(("d", f"{what}_daily_limit", day))
        if month is not None:
            out.append(("m", f"{what}_monthly_limit", month))
        return out


@dataclass(frozen=True)
class OverQuota:
    """A refused reservation: which limit, its value, the count, seconds until it resets."""

    limit_name: str
    limit_value: int
    count: int
    retry_after: float


def _periods(now: float) -> dict[str, tuple[str, float]]:
    """{"d": (key, seconds to next UTC midnight), "m": (key, seconds to next month)}."""
    t = _dt.datetime.fromtimestamp(now, tz=_dt.timezone.utc)
    midnight = _dt.datetime(t.year, t.month, t.day, tzinfo=_dt.timezone.utc) + _dt.timedelta(1)
    month_end = _dt.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=_dt.timezone.utc)
    return {
        "d": (f"d:{t:%Y-%m-%d}", (midnight - t).total_seconds()),
        "m": (f"m:{t:%Y-%m}", (month_end - t).total_seconds()),
    }


class ProxyStore:
    """Ownership and usage in one SQLite database (a path, or ":memory:")."""

    def __init__(self, path: str = ":memory:", *, clock: Callable[[], float] = time.time):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"ProxyStore(path={self.path!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- ownership --------------------------------------------------------------------
    def record(self, caller: str, kind: str, item_id: str) -> None:
        """``caller`` created ``item_id`` (a pdf, conversion, batch or token digest)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO owned (caller, kind, id, created) VALUES (?, ?, ?, ?)",
                (caller, kind, item_id, self._clock()),
            )

    def owns(self, caller: str, kinds: Sequence[str], item_id: str) -> bool:
        marks = ",".join("?" * len(kinds))
        with self._lock:
            row = self._db.execute(
                f"SELECT 1 FROM owned WHERE caller = ? AND id = ? AND kind IN ({marks})",
                (caller, item_id, *kinds),
            ).fetchone()
        return row is not None

    def owned_ids(
        self, caller: str, kind: str, *, since: float, until: float, offset: int, limit: int
    ) -> list[str]:
        """The caller's ids of ``kind`` created in [since, until), newest first, one page."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM owned WHERE caller = ? AND kind = ? AND created >= ? "
                "AND created < ? ORDER BY created DESC, id LIMIT ? OFFSET ?",
                (caller, kind, since, until, limit, offset),
            ).fetchall()
        return [r[0] for r in rows]

    def charge_pages(self, caller: str, pdf_id: str, pages: int) -> bool:
        """Charge a PDF's page count once (the first time it is seen); True if charged now."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE owned SET pages = ? WHERE caller = ? AND kind = 'pdf' AND id = ? "
                "AND pages IS NULL",
                (pages, caller, pdf_id),
            )
            if cur.rowcount != 1:
                return False
            self._add(caller, "page", pages)
            return True

    # -- usage ------------------------------------------------------------------------
    def _add(self, caller: str, what: str, n: int) -> None:
        for key, _ in _periods(self._clock()).values():
            self._db.execute(
                "INSERT INTO usage (caller, period, what, count) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (caller, period, what) DO UPDATE SET count = count + excluded.count",
                (caller, key, what, n),
            )

    def _count(self, caller: str, period: str, what: str) -> int:
        row = self._db.execute(
            "SELECT count FROM usage WHERE caller = ? AND period = ? AND what = ?",
            (caller, period, what),
        ).fetchone()
        return int(row[0]) if row else 0

    def reserve(self, caller: str, what: str, n: int, quotas: Quotas) -> OverQuota | None:
        """Count ``n`` images (or check pages, n=0) against the quotas, atomically.

        Returns None when within budget (and counts them), else the limit that refused.
        """
        limits = quotas.limits(what)
        with self._lock:
            periods = _periods(self._clock())
            for kind, name, limit in limits:
                key, reset = periods[kind]
                count = self._count(caller, key, what)
                if count + max(n, 1) > limit:
                    return OverQuota(name, limit, count, reset)
            if n:
                self._add(caller, what, n)
        return None

    def refund(self, caller: str, what: str, n: int) -> None:
        """Give back a reservation the upstream did not carry out."""
        if n:
            with self._lock:
                self._add(caller, what, -n)

    def used(self, caller: str, what: str) -> dict[str, int]:
        """{"day": n, "month": n} for reports and tests."""
        with self._lock:
            periods = _periods(self._clock())
            return {
                "day": self._count(caller, periods["d"][0], what),
                "month": self._count(caller, periods["m"][0], what),
            }
