"""Run an async job from synchronous code, even inside a running event loop (Jupyter).

Why: a Jupyter cell already runs inside the kernel's asyncio loop, so ``asyncio.run`` fails
there, and patching the loop (nest_asyncio) changes it for everyone. Instead the job gets its
own loop in a worker thread; the calling thread waits, ticks the progress bar, and turns
Ctrl-C (a kernel interrupt) into a clean cancellation of the job, so its journal is left
consistent before ``KeyboardInterrupt`` propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def _as_coroutine(make_coro: Callable[[], Awaitable[T]]) -> T:
    return await make_coro()


def run_blocking(
    make_coro: Callable[[], Awaitable[T]],
    *,
    on_tick: Callable[[], None] | None = None,
    tick: float = 0.1,
) -> T:
    """Run ``make_coro()`` to completion on a private loop in a worker thread; return its value.

    ``on_tick`` is called in the calling thread about every ``tick`` seconds while it runs
    (progress bars belong to the caller's thread). Exceptions from the job are re-raised here.
    """
    box: dict[str, Any] = {}
    started = threading.Event()
    # Waited on instead of thread.join(): a join interrupted by KeyboardInterrupt can mark
    # the thread stopped while it still runs (CPython), so a second join returns at once.
    finished = threading.Event()

    def worker() -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            task: asyncio.Task[Any] = loop.create_task(_as_coroutine(make_coro))
            box["loop"], box["task"] = loop, task
            started.set()
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                finished.set()

    thread = threading.Thread(target=worker, name="mathpix-nb-bulk", daemon=True)
    thread.start()
    try:
        while not finished.wait(tick):
            if on_tick is not None:
                on_tick()
        if on_tick is not None:
            on_tick()
    except KeyboardInterrupt:
        started.wait()
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        finished.wait()
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
