"""Rate limit (per minute), monthly quotas and the concurrency cap of the local server.

Everything here runs on the server's event loop thread, so no locks are needed.
"""

from __future__ import annotations

import math
from collections import deque

import anyio


class MinuteWindow:
    """Sliding 60-second window of accepted requests."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()

    def admit(self, limit: int | None, now: float) -> int | None:
        """Record a request; return ``None`` if allowed, else the count it would reach."""
        self._prune(now)
        if limit is not None and len(self._times) >= limit:
            return len(self._times) + 1
        self._times.append(now)
        return None

    def retry_after(self, now: float) -> int:
        """Whole seconds until the oldest request leaves the window (at least 1)."""
        self._prune(now)
        if not self._times:
            return 1
        return max(1, math.ceil(self._times[0] + self.window - now))


class Usage:
    """Images and PDF pages counted against the monthly quotas (server lifetime = a month),
    and the counts ``v3/ocr-usage`` reports, summed per second, usage type and app id (at
    most ``max_buckets`` seconds of activity are kept, oldest dropped first)."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        self.images = 0
        self.pages = 0
        self.max_buckets = max_buckets
        self._counts: dict[tuple[int, str, str], int] = {}

    def record(self, ts: float, usage_type: str, app_id: str, count: int) -> None:
        key = (int(ts), usage_type, app_id)
        self._counts[key] = self._counts.get(key, 0) + count
        while len(self._counts) > self.max_buckets:
            del self._counts[next(iter(self._counts))]

    @property
    def events(self) -> list[tuple[float, str, str, int]]:
        """(epoch second, usage_type, app_id, count) rows, oldest first."""
        return [(float(t), kind, app, n) for (t, kind, app), n in self._counts.items()]


class Concurrency:
    """A resizable cap on requests processed at once; the rest wait in FIFO order."""

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None

    def limiter(self, cap: int | None) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(math.inf)
        tokens: float = math.inf if cap is None else cap
        if self._limiter.total_tokens != tokens:
            self._limiter.total_tokens = tokens
        return self._limiter
