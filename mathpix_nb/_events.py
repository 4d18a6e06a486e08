"""What a client did, as events for observers (counting, progress, logging, tests).

``Mathpix(observers=[fn])`` or ``client.add_observer(fn)``: ``fn(event)`` is called for every
request sent, every answer received, every retry and every wait, in the thread or task that
runs the call. Observers must be quick and must not raise (an exception is logged and
dropped, so counting can never break OCR). Events carry no headers, bodies or secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Event", "EventKind", "Observer", "Observers", "WaitReason"]

EventKind = Literal["request", "response", "retry", "wait"]
WaitReason = Literal["retry", "token", "poll", "rate_limit"]
"""Why a client waits: ``retry`` (back-off after a failure), ``rate_limit`` (a 429's back-off),
``token`` (another request is fetching an app token), ``poll`` (a PDF or async result is not
ready yet)."""

_log = logging.getLogger("mathpix_nb")


@dataclass(frozen=True)
class Event:
    """One thing a client did.

    * ``request``: ``method`` + ``path`` are about to be sent (``attempt`` 0 is the first try);
    * ``response``: the answer came (``status_code``), or the connection failed (``error``);
    * ``retry``: the request will be sent again after ``delay`` seconds; ``cause`` says why
      (e.g. ``"HTTP 503"``, ``"ReadTimeout"``, ``"sys_exception"``);
    * ``wait``: the client waits ``delay`` seconds for ``reason`` (see :data:`WaitReason`).
    """

    kind: EventKind
    method: str | None = None
    path: str | None = None
    attempt: int = 0
    status_code: int | None = None
    error: str | None = None
    delay: float | None = None
    reason: WaitReason | None = None
    cause: str | None = None


Observer = Callable[[Event], None]


class Observers:
    """A small, thread-safe-enough list of observers (copy-on-write)."""

    def __init__(self, initial: Iterable[Observer] = ()) -> None:
        self._items: tuple[Observer, ...] = tuple(initial)
        for fn in self._items:
            if not callable(fn):
                from ._exceptions import ConfigurationError

                raise ConfigurationError(f"observers must be callables, got {fn!r}")

    def add(self, fn: Observer) -> Callable[[], None]:
        if not callable(fn):
            from ._exceptions import ConfigurationError

            raise ConfigurationError(f"an observer must be a callable, got {fn!r}")
        self._items = (*self._items, fn)
        return lambda: self.remove(fn)

    def remove(self, fn: Observer) -> None:
        items = list(self._items)
        if fn in items:
            items.remove(fn)
        self._items = tuple(items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def emit(self, event: Event) -> None:
        for fn in self._items:
            try:
                fn(event)
            except Exception:  # an observer must never break a request
                _log.exception("mathpix_nb observer %r failed on %s", fn, event.kind)
