"""``pdf_wait(pdf_id, on_status=...)``: the one PDF polling loop, with a status hook that
surfaces (the CLI's progress bar) draw from. Both clients, over loopback against the local
server; the waits run on a ``FakeClock``, so no test sleeps for real between polls."""

from __future__ import annotations

import io
from typing import Any

import pytest

from mathpix_nb import ConfigurationError, FakeClock, OptionError, PdfError, PollTimeoutError

from .conftest import keys, text_image

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _pdf(pages: int) -> bytes:
    images = [text_image(300, 200, label=f"page {i + 1}") for i in range(pages)]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def _posts(srv: Any) -> int:
    return sum(1 for r in srv.log if r.method == "POST")


async def test_on_status_sees_the_pages_done_grow_to_the_total(make, srv):
    srv.configure(latency_base=0.03)  # each page takes a while: progress shows in between
    clock = FakeClock()
    api = make(**keys(srv), clock=clock)
    pdf_id = await api.call("pdf_submit", _pdf(4))
    seen: list[dict[str, Any]] = []
    result = await api.call(
        "pdf_wait", pdf_id, outputs=("mmd",), poll_interval=0.05, on_status=seen.append
    )
    assert result.pdf_id == pdf_id and "echo pdf page 4" in (result.mmd or "")
    done = [s.get("num_pages_completed") or 0 for s in seen]
    assert done == sorted(done)  # never goes back
    assert len(set(done)) >= 3  # intermediate counts were reported, not just 0 and 4
    assert seen[-1]["status"] == "completed" and seen[-1]["num_pages"] == 4 and done[-1] == 4
    assert result.raw is seen[-1]
    assert clock.sleeps and all(s == pytest.approx(0.05) for s in clock.sleeps)


async def test_pdf_passes_on_status_through(make, srv):
    seen: list[str] = []
    api = make(**keys(srv), clock=FakeClock())
    result = await api.call(
        "pdf", _pdf(2), poll_interval=0.05, on_status=lambda s: seen.append(s["status"])
    )
    assert result.mmd and seen[-1] == "completed" and len(seen) >= 2


async def test_no_outputs_only_waits(make, srv):
    api = make(**keys(srv), clock=FakeClock())
    pdf_id = await api.call("pdf_submit", _pdf(1))
    result = await api.call("pdf_wait", pdf_id, outputs=(), poll_interval=0.05)
    assert result.status == "completed" and result.outputs == {}
    assert not [r for r in srv.log if r.endpoint.startswith("/v3/pdf/{pdf_id}.")]


async def test_the_deadline_is_on_the_clients_clock(make, srv):
    srv.configure(pdf_step_delay=0.5)
    clock = FakeClock()
    api = make(**keys(srv), clock=clock)
    pdf_id = await api.call("pdf_submit", _pdf(1))
    seen: list[dict[str, Any]] = []
    try:
        with pytest.raises(PollTimeoutError, match=rf"{pdf_id} was not ready within 2 s"):
            await api.call("pdf_wait", pdf_id, timeout=2, on_status=seen.append)
    finally:
        srv.configure(pdf_step_delay=0.05)
    assert sum(clock.sleeps) == pytest.approx(2.0)  # backs off 0.5, 0.75, then cut at 2 s
    assert len(seen) == len(clock.sleeps) + 1


async def test_a_failed_pdf_is_reported_to_the_hook_then_raised(make, srv):
    api = make(**keys(srv), clock=FakeClock())
    pdf_id = await api.call("pdf_submit", b"not a pdf at all")
    seen: list[dict[str, Any]] = []
    with pytest.raises(PdfError) as info:
        await api.call("pdf_wait", pdf_id, poll_interval=0.05, on_status=seen.append)
    assert seen[-1]["status"] == "error" and info.value.error_id


async def test_an_exception_in_the_hook_ends_the_wait(make, srv):
    api = make(**keys(srv), clock=FakeClock())
    pdf_id = await api.call("pdf_submit", _pdf(1))

    def stop(status: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await api.call("pdf_wait", pdf_id, poll_interval=0.05, on_status=stop)
    statuses = [r for r in srv.log if r.endpoint == "/v3/pdf/{pdf_id}"]
    assert len(statuses) == 1  # the first status, then no further poll


async def test_a_typo_in_a_keyword_fails_before_sending(make, srv):
    api = make(**keys(srv))
    pdf_id = await api.call("pdf_submit", _pdf(1))
    srv.clear_log()
    with pytest.raises(TypeError, match="on_stauts"):
        await api.call("pdf_wait", pdf_id, on_stauts=print)
    with pytest.raises(OptionError, match=r"'on_stauts'.*Did you mean 'on_status'"):
        await api.call("pdf", _pdf(1), on_stauts=print)
    with pytest.raises(ConfigurationError, match="on_status must be a function"):
        await api.call("pdf_wait", pdf_id, on_status="progress")
    with pytest.raises(ConfigurationError, match="timeout must be seconds"):
        await api.call("pdf_wait", pdf_id, timeout=0)
    assert srv.log == []
