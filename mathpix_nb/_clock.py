"""Time, injectable: every wait and deadline of the clients goes through a ``Clock``.

Why: token refresh, PDF polling, retry back-off and bulk deadlines are all about time, and a
test of them should not wait real seconds. ``FakeClock`` makes sleeps instant while the
time they would have taken still counts towards deadlines and token expiry.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the clients need of time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (token expiry)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward (deadlines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` (the sync client)."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop (the async client)."""
        ...


class SystemClock:
    """The real clock (the default)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock for tests: ``sleep`` returns at once and moves the clock forward instead.

    ``sleeps`` records every wait asked for (so a test can assert a back-off schedule);
    ``advance(seconds)`` moves time on, e.g. past a token's expiry.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._wall = time.time() if start is None else float(start)
        self._mono = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += max(0.0, seconds)
            self._mono += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await anyio.sleep(0)  # still let other tasks run

    def __repr__(self) -> str:
        return f"FakeClock(time={self._wall:.3f}, sleeps={len(self.sleeps)})"
