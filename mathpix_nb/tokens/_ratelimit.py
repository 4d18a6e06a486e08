"""Per-caller rate limiting: a token bucket per caller name.

Each caller may take ``per_minute`` tokens a minute, with bursts of up to ``burst``. A refused
request learns how many whole seconds to wait (the ``Retry-After`` value).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by caller; thread-safe, memory bounded by the number of callers."""

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive, got {per_minute!r}")
        self.per_minute = float(per_minute)
        self.burst = max(1, int(burst if burst is not None else math.ceil(per_minute)))
        self._rate = self.per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate


def retry_after_header(wait: float) -> str:
    """Whole seconds for ``Retry-After`` (never 0, so clients do not retry at once)."""
    return str(max(1, math.ceil(wait)))
