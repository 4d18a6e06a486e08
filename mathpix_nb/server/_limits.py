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
    """Images and PDF pages counted against the monthly quotas (server lifetime = a month)."""

    def __init__(self) -> None:
        self.images = 0
        self.pages = 0
        # (epoch seconds, usage_type, app_id, count) for v3/ocr-usage
        self.events: list[tuple[float, str, str, int]] = []


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
