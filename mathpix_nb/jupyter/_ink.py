"""``InkPad``: write an equation by hand (pen, mouse or touch) and read it live (v3/strokes).

The page draws the ink and sends each finished stroke to the kernel as a custom message
(``{"type": "stroke", "points": [[x, y], ...]}``); the kernel reads the drawing through the
client's live :class:`~mathpix_nb.StrokesSession` once the pen has rested ``debounce``
seconds (one session per pad, renewed by the client before it expires), and the result is
drawn with Mathpix's renderer like every other result (the page shares the panel's renderer).

What is saved in the notebook: options, status, plain-words errors, the result's Mathpix
Markdown and LaTeX, the number of strokes. Never a key or a token, and the strokes only when
asked (``keep_strokes=True``): otherwise they travel as custom messages, which no widget
manager stores.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import traitlets

from .._config import normalize_region
from .._exceptions import ConfigurationError, NotAllowedError
from .._mmd import result_mmd
from .._options import StrokesOptions, check_options
from .._strokes import StrokesError, normalize_strokes
from . import _assets
from ._clients import ClientPool
from ._view import MathpixWidget
from .widget import describe_error

__all__ = ["InkPad"]

logger = logging.getLogger("mathpix_nb.jupyter")

STATIC = Path(__file__).parent / "static"

#: A stroke longer than this is refused (a pointer sampled at 240 Hz for 40 s).
MAX_POINTS_PER_STROKE = 10_000
#: More strokes than this in one drawing are refused (the request would pass 512 KB anyway).
MAX_STROKES = 2_000

Point = tuple[float, float]
Stroke = list[Point]
Timer = Callable[[float, Callable[[], None]], Any]


def _start_timer(delay: float, fn: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(max(0.0, delay), fn)
    timer.daemon = True
    timer.start()
    return timer


class InkPad(MathpixWidget):
    """A handwriting pad: draw with a pen, the mouse or a finger; the reading appears live.

    Args:
        client: a ``Mathpix`` client, or ``{region: Mathpix}``. Without one, credentials from
            the environment are used; with none, the local offline engine (the pad says so).
        region: "global" or "eu", among the client's regions.
        debounce: seconds the pen must rest before the drawing is read (default 0.5).
        keep_strokes: also keep the strokes in the saved widget state (off by default: the
            handwriting is private).
        clock: the clock the debounce waits on (default: the client's clock).
        options: v3/strokes options sent with every request (e.g. ``formats=["text"]``).

    Example:
        >>> pad = InkPad(client=Mathpix())   # doctest: +SKIP
        >>> pad                              # write; the LaTeX appears  # doctest: +SKIP
        >>> pad.result.latex_styled           # doctest: +SKIP
    """

    _esm = _assets.esm("ink.js")  # anywidget takes a str
    # the panel's sheet first (variables, buttons, the result's .mpx-doc look), then the pad's
    _css = _assets.CSS.read_text(encoding="utf-8") + (  # type: ignore[assignment]
        STATIC / "ink.css"
    ).read_text(encoding="utf-8")  # anywidget takes a str as well as a Path

    kind = traitlets.Unicode("ink").tag(sync=True)

    # Configuration shown in the page.
    debounce_ms = traitlets.Int(500).tag(sync=True)
    engine_note = traitlets.Unicode("").tag(sync=True)
    offline = traitlets.Bool(False).tag(sync=True)
    region = traitlets.Unicode("global").tag(sync=True)

    # Outputs.
    status = traitlets.Unicode("idle").tag(sync=True)  # idle | waiting | busy | done | error
    error = traitlets.Unicode("").tag(sync=True)
    stroke_count = traitlets.Int(0).tag(sync=True)
    result_mmd = traitlets.Unicode("").tag(sync=True)
    result_latex = traitlets.Unicode("").tag(sync=True)
    result_meta = traitlets.Unicode("").tag(sync=True)

    # Only filled when keep_strokes=True: the drawing, kept in the saved state.
    kept_strokes = traitlets.List(traitlets.List(), default_value=[]).tag(sync=True)

    def __init__(
        self,
        *,
        client: Any = None,
        region: str | None = None,
        debounce: float = 0.5,
        keep_strokes: bool = False,
        clock: Any = None,
        **options: Any,  # StrokesOptions, checked below (its "region" box clashes by name)
    ) -> None:
        super().__init__()
        # a typo in an option is a TypeError now (with the near name), not at the first read
        checked = check_options(
            StrokesOptions,
            options,
            what="InkPad()",
            also=("client", "region", "debounce", "keep_strokes", "clock"),
        )
        if isinstance(debounce, bool) or not isinstance(debounce, int | float):
            raise TypeError(f"debounce must be seconds (a number), got {debounce!r}")
        if not (0 <= debounce <= 60) or not math.isfinite(debounce):
            raise ValueError(f"debounce={debounce!r} must be between 0 and 60 seconds.")
        if region is not None and not isinstance(client, Mapping):
            region = normalize_region(region)
        self._debounce = float(debounce)
        self.debounce_ms = round(self._debounce * 1000)
        self._keep = bool(keep_strokes)
        self._options: dict[str, Any] = {"formats": ["text", "latex_styled"], **checked}
        self._clock = clock
        self._timer_factory: Timer = _start_timer
        self._timer: Any = None
        self._pool: ClientPool | None = None
        self._session: Any = None  # the StrokesSession, opened at the first reading
        self._one_shot = False  # the client cannot open sessions: read the whole drawing
        self._strokes: list[Stroke] = []
        self._pending: list[Stroke] = []  # drawn, not yet sent to the session
        self._reset = False  # undo/clear: the next reading starts a new session
        self._generation = 0
        self._last_stroke = 0.0
        self._results: list[Any] = []
        self._last_error: BaseException | None = None
        self._closed = False
        self._lock = threading.Lock()  # the drawing and the pending strokes
        self._reading = threading.Lock()  # one reading at a time (the session is not shared)
        try:
            self._pool = ClientPool(client, region=region)
        except ValueError:
            raise
        except Exception as exc:  # e.g. no credentials and no offline engine: show it
            self._fail(exc)
        if self._pool is not None:
            self.region = self._pool.default_region
            self.offline = self._pool.offline
            self.engine_note = self._pool.note

    # -- Python API -------------------------------------------------------------------------

    @property
    def strokes(self) -> list[Stroke]:
        """The drawing: a list of strokes, each a list of (x, y) points (page pixels)."""
        with self._lock:
            return [list(s) for s in self._strokes]

    @property
    def result(self) -> Any:
        """The latest reading (an ``OcrResult``), None before the first one."""
        return self._results[-1] if self._results else None

    @property
    def results(self) -> list[Any]:
        """Every reading of this pad, oldest first."""
        return list(self._results)

    @property
    def sessions(self) -> int:
        """How many Mathpix strokes sessions this pad has opened (each is billed once)."""
        return 0 if self._session is None else int(self._session.sessions)

    @property
    def client(self) -> Any:
        """The client used for the pad's region."""
        if self._pool is None:
            raise RuntimeError(self.error or "The pad has no client.")
        return self._pool.get(self.region)

    def add_stroke(self, points: Sequence[Sequence[float]]) -> None:
        """Add one stroke (a list of (x, y) points) as if drawn; read after the debounce."""
        self._add(points)
        self._send_strokes()

    def undo(self) -> None:
        """Remove the last stroke (the next reading starts a new session)."""
        with self._lock:
            if not self._strokes:
                return
            self._strokes.pop()
            self._start_over()
            empty = not self._strokes
        self._after_edit(empty)

    def clear(self) -> None:
        """Remove every stroke and the reading on screen (they stay in ``results``)."""
        with self._lock:
            self._strokes = []
            self._start_over()
        self._after_edit(True)

    def recognize(self) -> Any:
        """Read the drawing now (without waiting for the debounce); returns the ``OcrResult``.

        Errors are shown in the pad and raised."""
        self._cancel_timer()
        result = self._read()
        if result is None:
            exc, self._last_error = self._last_error, None
            if exc is not None:
                raise exc
            raise StrokesError("The pad is empty: there is nothing to read. Fix: draw something.")
        return result

    def close(self) -> None:
        """Close the widget and any client it made (not a client you passed in)."""
        self._closed = True
        self._cancel_timer()
        if self._session is not None:
            with self._reading:
                self._session.close()
        if self._pool is not None:
            self._pool.close()
        super().close()

    def __repr__(self) -> str:
        return (
            f"InkPad(strokes={self.stroke_count}, region={self.region!r}, "
            f"sessions={self.sessions}, results={len(self._results)})"
        )

    # -- the drawing ------------------------------------------------------------------------

    def _add(self, points: Any) -> None:
        stroke = self._checked(points)
        with self._lock:
            if len(self._strokes) >= MAX_STROKES:
                raise StrokesError(
                    f"The pad holds {MAX_STROKES} strokes already. Fix: clear it (or undo)."
                )
            self._strokes.append(stroke)
            self._pending.append(stroke)
            self._last_stroke = self._now()
            count = len(self._strokes)
        self.error = ""
        self.stroke_count = count
        self._keep_state()
        self.status = "waiting"
        self._arm(self._debounce)

    @staticmethod
    def _checked(points: Any) -> Stroke:
        if isinstance(points, Sequence) and len(points) > MAX_POINTS_PER_STROKE:
            raise StrokesError(
                f"A stroke has {len(points)} points, over the pad's {MAX_POINTS_PER_STROKE}. "
                "Fix: draw it as several strokes."
            )
        xs, ys = normalize_strokes([points])  # the core's one stroke rule
        return list(zip(xs[0], ys[0], strict=True))

    def _start_over(self) -> None:
        """Call with ``_lock`` held: the drawing changed in a way a session cannot follow."""
        self._pending = []
        self._reset = True
        self._generation += 1
        self._last_stroke = self._now()

    def _after_edit(self, empty: bool) -> None:
        self.stroke_count = len(self._strokes)
        self._keep_state()
        self._send_strokes()
        self.error = ""
        if empty:
            self._cancel_timer()
            with self.hold_sync():
                self.result_mmd = self.result_latex = self.result_meta = ""
                self.status = "idle"
        else:
            self.status = "waiting"
            self._arm(self._debounce)

    def _keep_state(self) -> None:
        if self._keep:
            with self._lock:
                self.kept_strokes = [[[x, y] for x, y in s] for s in self._strokes]

    def _send_strokes(self) -> None:
        """The drawing to the page (a custom message: never saved)."""
        with self._lock:
            drawing = [[[x, y] for x, y in s] for s in self._strokes]
        self.send({"type": "strokes", "strokes": drawing})

    # -- debounce ---------------------------------------------------------------------------

    def _now(self) -> float:
        clock = self._clock
        if clock is None and self._pool is not None:
            try:
                clock = self._pool.get(self.region).clock
            except Exception:
                clock = None
        if clock is None:
            import time

            return time.monotonic()
        return float(clock.monotonic())

    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        if not self._closed:
            self._timer = self._timer_factory(delay, self._due)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        cancel = getattr(timer, "cancel", None)
        if callable(cancel):
            cancel()

    def _due(self) -> None:
        """The timer fired: read if the pen has rested ``debounce`` seconds, else wait more."""
        if self._closed:
            return
        rested = self._now() - self._last_stroke
        if rested + 1e-3 < self._debounce:
            self._arm(self._debounce - rested)
            return
        try:
            self._read()
        except Exception:  # pragma: no cover - _read shows every error itself
            logger.exception("ink pad reading failed")

    # -- reading ----------------------------------------------------------------------------

    def _read(self) -> Any:
        with self._reading:
            with self._lock:
                batch, self._pending = self._pending, []
                reset, self._reset = self._reset, False
                drawing = list(self._strokes)
                generation = self._generation
            if not drawing:
                return None
            if not batch and not reset:
                return self.result  # nothing new since the last reading
            if self._pool is None:
                self.status = "error"
                return None
            self.status = "busy"
            try:
                result = self._ask(batch, drawing, reset)
            except Exception as exc:
                with self._lock:
                    if generation == self._generation:  # nothing undone meanwhile: retry later
                        self._pending = batch + self._pending
                        self._reset = self._reset or reset
                self._fail(exc)
                return None
            self._results.append(result)
            with self._lock:
                stale = generation != self._generation or bool(self._pending)
            if generation == self._generation:
                self._show(result, len(drawing))
            if not stale:
                self.status = "done"
            return result

    def _ask(self, batch: list[Stroke], drawing: list[Stroke], whole: bool) -> Any:
        client = self._pool.get(self.region) if self._pool is not None else None
        if client is None:  # pragma: no cover - _read checked the pool
            raise RuntimeError("The pad has no client.")
        if self._session is None and not self._one_shot:
            try:
                self._session = client.strokes_session(**self._options)
            except NotAllowedError:
                self._one_shot = True  # a fixed app token: one request per reading
        if self._one_shot:
            return client.strokes(drawing, **self._options)
        session = self._session
        if whole:
            session.clear()  # the old session holds strokes the drawing no longer has
            return session.add(drawing)
        return session.add(batch)

    def _show(self, result: Any, count: int) -> None:
        latex = str(getattr(result, "latex_styled", None) or "")
        parts = [f"{count} stroke{'s' if count != 1 else ''}", f"region {self.region}"]
        confidence = getattr(result, "confidence", None)
        if confidence is not None:
            parts.append(f"confidence {confidence:.2f}")
        with self.hold_sync():
            self.error = ""
            self.result_mmd = result_mmd(result) or "*(no text recognised)*"
            self.result_latex = latex
            self.result_meta = " · ".join(parts)

    def _fail(self, exc: BaseException) -> None:
        self._last_error = exc
        redact = self._pool.redact if self._pool is not None else str
        self.error = describe_error(exc, redact)
        self.status = "error"
        logger.info("ink pad error: %s", self.error)

    # -- messages from the page -------------------------------------------------------------

    def _on_custom(self, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "ready":
            self._send_strokes()
        elif kind == "stroke":
            try:
                self._add(content.get("points"))
            except (StrokesError, ConfigurationError) as exc:
                self._fail(exc)
                self._send_strokes()  # the page drops the stroke the kernel refused
        elif kind == "undo":
            self.undo()
        elif kind == "clear":
            self.clear()
        elif kind == "recognize":
            self._cancel_timer()
            self._read()
