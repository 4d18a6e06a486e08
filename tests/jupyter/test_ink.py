"""The InkPad's kernel side, played with messages as the page sends them (``stroke``, ``undo``,
``clear``, ``recognize``, ``ready``) against the echo LocalServer over loopback: the debounce
on a FakeClock (the timer is captured, never a real wait), one strokes session per pad that
gets only the new strokes and is renewed before it expires, undo/clear, errors in plain
words, and the saved state scanned for strokes and secrets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mathpix_nb import FakeClock, Mathpix, StrokesError
from mathpix_nb.server import Faults

from .conftest import Browser

pytestmark = pytest.mark.timeout(30)

# as the page sends them: CSS pixels, one decimal
STROKE_A = [[10.0, 5.0], [20.5, 30.0], [40.0, 50.0]]
STROKE_B = [[15.0, 10.0], [25.0, 12.0]]


class Timers:
    """Stands in for threading.Timer: records what the pad schedules; the test fires it."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Callable[[], None]]] = []
        self.cancelled = 0

    def __call__(self, delay: float, fn: Callable[[], None]) -> Any:
        self.scheduled.append((delay, fn))
        timers = self

        class Handle:
            def cancel(self) -> None:
                timers.cancelled += 1

        return Handle()

    def fire(self) -> None:
        """Fire the latest timer (the earlier ones were cancelled)."""
        _, fn = self.scheduled[-1]
        fn()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ink_client(local_server: Any, clock: FakeClock) -> Iterator[Mathpix]:
    with Mathpix(
        app_id=local_server.app_id,
        app_key=local_server.app_key,
        region_urls=dict(local_server.urls),
        clock=clock,
    ) as client:
        yield client


def make_pad(client: Any, **kwargs: Any) -> tuple[Any, Browser, Timers]:
    from mathpix_nb.jupyter import InkPad

    pad = InkPad(client=client, **kwargs)
    timers = Timers()
    pad._timer_factory = timers
    return pad, Browser(pad), timers


def strokes_requests(server: Any) -> list[Any]:
    return [r for r in server.log if r.endpoint == "/v3/strokes"]


def test_strokes_are_read_once_the_pen_rests(ink_client, clock, local_server):
    local_server.clear_log()
    pad, page, timers = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        assert pad.stroke_count == 1 and pad.status == "waiting"
        assert timers.scheduled[-1][0] == pytest.approx(0.5)
        clock.advance(0.3)
        page.send({"type": "stroke", "points": STROKE_B})  # still writing: the wait restarts
        assert timers.cancelled >= 1
        clock.advance(0.3)  # 0.6 s after the first stroke, 0.3 s after the last
        timers.fire()
        assert not strokes_requests(local_server)  # not yet: re-armed for the rest
        assert timers.scheduled[-1][0] == pytest.approx(0.2)
        clock.advance(0.2)
        timers.fire()
        assert len(strokes_requests(local_server)) == 1
        assert pad.status == "done"
        assert pad.result_mmd.startswith("echo strokes:2 points:5 bbox:10,5,40,50")
        assert pad.result_latex.startswith("\\text{echo strokes:2")
        assert "2 strokes" in pad.result_meta and "region global" in pad.result_meta
        assert pad.result is pad.results[-1] and pad.sessions == 1
        assert pad.strokes == [[(10, 5), (20.5, 30), (40, 50)], [(15, 10), (25, 12)]]
        timers.fire()  # a late timer with nothing new: nothing is sent
        assert len(strokes_requests(local_server)) == 1
    finally:
        pad.close()


def test_one_session_gets_only_the_new_strokes_and_renews_before_it_ends(
    ink_client, clock, local_server
):
    local_server.clear_log()
    pad, page, timers = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        clock.advance(0.5)
        timers.fire()
        page.send({"type": "stroke", "points": STROKE_B})
        clock.advance(0.5)
        timers.fire()
        first, second = strokes_requests(local_server)
        assert first.auth_mode == second.auth_mode == "app_token"  # the session's token
        assert pad.sessions == 1
        mints = [r for r in local_server.log if r.endpoint == "/v3/app-tokens"]
        assert len(mints) == 1
        assert pad.result_mmd.startswith("echo strokes:2 points:5")  # the whole drawing
        # 280 s later the session has 20 s left: inside the client's renewal margin
        clock.advance(280)
        page.send({"type": "stroke", "points": [[1, 1], [2, 2]]})
        clock.advance(0.5)
        timers.fire()
        assert pad.sessions == 2
        assert pad.result_mmd.startswith("echo strokes:3 points:7 bbox:1,1,40,50")
        assert clock.sleeps == []  # nothing waited for real or fake
    finally:
        pad.close()


def test_undo_and_clear_start_over_and_the_page_gets_the_drawing(ink_client, clock, local_server):
    pad, page, timers = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        page.send({"type": "stroke", "points": STROKE_B})
        clock.advance(0.5)
        timers.fire()
        page.send({"type": "undo"})
        sent = [c for c, _ in page.received if c.get("type") == "strokes"]
        assert sent[-1]["strokes"] == [STROKE_A]
        assert pad.stroke_count == 1 and pad.status == "waiting"
        clock.advance(0.5)
        timers.fire()
        assert pad.result_mmd.startswith("echo strokes:1 points:3 bbox:10,5,40,50")
        assert pad.sessions == 2  # the old session held the undone stroke
        page.send({"type": "clear"})
        assert pad.strokes == [] and pad.stroke_count == 0
        assert pad.result_mmd == "" and pad.status == "idle"
        assert len(pad.results) == 2  # kept in the history
        page.send({"type": "ready"})  # a new view asks for the drawing
        assert page.received[-1][0] == {"type": "strokes", "strokes": []}
        page.send({"type": "undo"})  # nothing to undo: nothing happens
        assert pad.status == "idle"
    finally:
        pad.close()


def test_read_now_and_from_python(ink_client, local_server):
    pad, page, timers = make_pad(ink_client, debounce=2)
    try:
        assert pad.debounce_ms == 2000
        with pytest.raises(StrokesError, match="nothing to read"):
            pad.recognize()
        pad.add_stroke([(0, 0), (30, 40)])
        assert timers.scheduled[-1][0] == pytest.approx(2.0)
        result = pad.recognize()  # no waiting
        assert result.text.startswith("echo strokes:1 points:2 bbox:0,0,30,40")
        page.send({"type": "stroke", "points": STROKE_B})
        page.send({"type": "recognize"})  # the "Read now" button
        assert pad.result_mmd.startswith("echo strokes:2 points:4")
        assert "InkPad(strokes=2" in repr(pad)
    finally:
        pad.close()


@pytest.mark.parametrize(
    ("points", "says"),
    [
        ([[1, 2], [3]], "not an (x, y) point"),
        ([[1, float("nan")]], "finite"),
        ([], "no points"),
        ("12,3", "not a stroke"),
        ([[0, 0]] * 10_001, "Fix: draw it as several strokes"),
    ],
)
def test_a_malformed_stroke_is_refused_in_plain_words(ink_client, points, says):
    pad, page, _ = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        page.send({"type": "stroke", "points": points})
        assert pad.status == "error" and says in pad.error
        assert pad.stroke_count == 1
        # the page is told the kernel's drawing, so it drops the refused stroke
        assert page.received[-1][0]["type"] == "strokes"
        assert len(page.received[-1][0]["strokes"]) == 1
    finally:
        pad.close()


def test_a_failed_reading_is_shown_and_retried_with_the_same_strokes(
    ink_client, clock, local_server
):
    pad, page, timers = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        clock.advance(0.5)
        timers.fire()
        local_server.configure(
            faults=Faults(sequence=("http_5xx",) * 9, endpoints=("/v3/strokes",))
        )
        page.send({"type": "stroke", "points": STROKE_B})
        clock.advance(0.5)
        timers.fire()
        assert pad.status == "error" and pad.error
        assert local_server.app_key not in pad.error
        local_server.configure(faults=None)
        page.send({"type": "recognize"})
        assert pad.status == "done"
        assert pad.result_mmd.startswith("echo strokes:2 points:5")  # nothing lost
    finally:
        local_server.configure(faults=None)
        pad.close()


def test_a_fixed_token_client_reads_the_whole_drawing_each_time(ink_client, local_server):
    token = ink_client.app_token(60)
    with Mathpix(app_token=token.app_token, region_urls=dict(local_server.urls)) as fixed:
        pad, page, _ = make_pad(fixed)
        try:
            page.send({"type": "stroke", "points": STROKE_A})
            page.send({"type": "recognize"})
            page.send({"type": "stroke", "points": STROKE_B})
            page.send({"type": "recognize"})
            assert pad.result_mmd.startswith("echo strokes:2 points:5")
            assert pad.sessions == 0  # no session (it cannot open one), no error
            assert pad.error == ""
        finally:
            pad.close()


def test_eu_region(local_server):
    with (
        Mathpix(
            app_id=local_server.app_id, app_key=local_server.app_key, region_urls=local_server.urls
        ) as glob,
        Mathpix(
            app_id=local_server.app_id,
            app_key=local_server.app_key,
            region="eu",
            region_urls=local_server.urls,
        ) as eu,
    ):
        local_server.clear_log()
        pad, page, _ = make_pad({"global": glob, "eu": eu}, region="eu")
        try:
            page.send({"type": "stroke", "points": STROKE_A})
            page.send({"type": "recognize"})
            (request,) = strokes_requests(local_server)
            assert request.region == "eu" and "region eu" in pad.result_meta
        finally:
            pad.close()


def test_saved_state_holds_no_strokes_and_no_secrets(ink_client, clock, local_server):
    pad, page, timers = make_pad(ink_client)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        page.send({"type": "stroke", "points": STROKE_B})
        clock.advance(0.5)
        timers.fire()
        session = pad._session._state
        secrets = [local_server.app_key, session.token.app_token, session.token.strokes_session_id]
        saved = json.dumps(pad.get_state(), default=str)
        assert "echo strokes:2" in saved  # the result is kept...
        assert "20.5" not in saved and 'kept_strokes": []' in saved  # ...the ink is not
        for secret in secrets:
            assert secret not in saved and secret not in repr(pad)
        # messages to the page carry no secret either
        assert not any(s in json.dumps(c) for c, _ in page.received for s in secrets)
    finally:
        pad.close()


def test_keep_strokes_keeps_them_in_the_saved_state(ink_client):
    pad, page, _ = make_pad(ink_client, keep_strokes=True)
    try:
        page.send({"type": "stroke", "points": STROKE_A})
        assert pad.get_state()["kept_strokes"] == [STROKE_A]
        page.send({"type": "undo"})
        assert pad.get_state()["kept_strokes"] == []
    finally:
        pad.close()


def test_arguments_are_checked(ink_client):
    from mathpix_nb.jupyter import InkPad

    with pytest.raises(ValueError, match="between 0 and 60"):
        InkPad(client=ink_client, debounce=-1)
    with pytest.raises(TypeError, match="debounce must be seconds"):
        InkPad(client=ink_client, debounce="fast")
    with pytest.raises(ValueError, match="region"):
        InkPad(client=ink_client, region="mars")


def test_a_real_timer_reads_after_the_debounce(local_server):
    """The default timer (a daemon thread): a short real debounce, bounded wait."""
    import time

    from mathpix_nb.jupyter import InkPad

    with Mathpix(
        app_id=local_server.app_id, app_key=local_server.app_key, base_url=local_server.url
    ) as client:
        pad = InkPad(client=client, debounce=0.05)
        try:
            Browser(pad).send({"type": "stroke", "points": STROKE_A})
            deadline = time.monotonic() + 10
            while pad.status != "done" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pad.result_mmd.startswith("echo strokes:1 points:3")
        finally:
            pad.close()


def test_the_magic_opens_the_pad(client, local_server):
    from IPython.core.error import UsageError
    from IPython.core.getipython import get_ipython as running_shell
    from IPython.testing.globalipapp import get_ipython

    from mathpix_nb.jupyter import InkPad

    shell = get_ipython() or running_shell()
    shell.run_line_magic("load_ext", "mathpix_nb")
    shell.user_ns["ink_client"] = client
    try:
        pad = shell.run_line_magic("mathpix", "--ink --client ink_client")
        assert isinstance(pad, InkPad)
        try:
            Browser(pad).send({"type": "stroke", "points": STROKE_A})
            Browser(pad).send({"type": "recognize"})
            assert pad.result_mmd.startswith("echo strokes:1 points:3")
        finally:
            pad.close()
        with pytest.raises(UsageError, match="--ink opens the ink pad"):
            shell.run_line_magic("mathpix", "x.png --ink --client ink_client")
    finally:
        shell.run_line_magic("unload_ext", "mathpix_nb")
        shell.user_ns.pop("ink_client", None)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_without_credentials_the_offline_engine_reads_the_handwriting():
    """A new user with no credentials: the pad says so and the offline engine reads the ink
    (drawn as a picture by the local server)."""
    pytest.importorskip("rapidocr")
    from mathpix_nb.jupyter import InkPad
    from tests.server.test_strokes_sessions import pen

    pad = InkPad()
    try:
        assert pad.offline is True and "Offline engine" in pad.engine_note
        ink = pen("TILE")
        page = Browser(pad)
        for xs, ys in zip(ink["x"], ink["y"], strict=True):
            page.send({"type": "stroke", "points": [list(p) for p in zip(xs, ys, strict=True)]})
        result = pad.recognize()
        assert result.text == "TILE" and pad.result_mmd == "TILE"
        assert result.is_handwritten is True
    finally:
        pad.close()


def test_a_misspelled_option_is_refused_when_the_pad_is_made():
    from mathpix_nb import OptionError
    from mathpix_nb.jupyter import InkPad

    with pytest.raises(OptionError, match="formats"):
        InkPad(formatz=["text"])  # type: ignore[call-arg]
