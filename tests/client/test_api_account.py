"""Usage (``ocr_usage``, the ``usage_summary`` hook), PDF history and deletion
(``pdf_results``, ``pdf_delete``) and app-token lookups (``app_token_get`` /
``app_token_delete``) against the local server over loopback, sync and async."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mathpix_nb import (
    AppTokenInfo,
    ConfigurationError,
    Event,
    NotAllowedError,
    OcrUsage,
    OptionError,
    PdfError,
    TokenError,
    UsageSummary,
)
from mathpix_nb.server import LocalServer

from ._api_support import Recorder, close_http, pdf_bytes
from .conftest import error_text, keys, png_bytes, scan_for_secrets, text_image

pytestmark = pytest.mark.anyio


@pytest.fixture
def own() -> Any:
    """A server of this test's own: usage and history are account-wide."""
    with LocalServer(engine="echo", regions=("global", "eu"), pdf_step_delay=0.01) as server:
        yield server


async def run(value: Any) -> Any:
    import inspect

    return await value if inspect.isawaitable(value) else value


# -- usage -----------------------------------------------------------------------------------
async def test_usage_counts_every_kind_of_work(make, kind, own):
    t0 = time.time()
    api = make(**keys(own))
    await api.text(text_image())
    await api.text(png_bytes(text_image(label="b")))
    await api.call("submit", text_image(label="c"))
    await api.call("pdf", pdf_bytes(3), poll_interval=0.05)
    await api.call("strokes", [[(0, 0), (5, 5)]])
    session = api.client.strokes_session()
    await run(session.add([[(0, 0), (5, 5)]]))
    await run(session.add([[(9, 9), (5, 5)]]))  # one session, billed once
    url = own.host_file(png_bytes(text_image(label="d")), "d.png")
    await api.call("batch", {"a": url, "b": url}, poll_interval=0.05)

    usage = await api.call("ocr_usage", from_date=datetime.fromtimestamp(t0 - 5, timezone.utc))
    assert isinstance(usage, OcrUsage)
    assert usage.by_type() == {
        "image": 4,
        "image-async": 1,
        "pdf-page": 3,
        "strokes": 1,
        "strokes-session": 1,
    }
    assert usage.total == 10 and len(usage) == 5
    record = next(r for r in usage if r.usage_type == "pdf-page")
    assert record.app_ids == (own.app_id,) and record.from_date

    summary = await api.call("usage_summary", t0)  # epoch seconds: a run's start
    assert isinstance(summary, UsageSummary)
    assert (summary.images, summary.pages, summary.strokes, summary.other) == (5, 3, 2, 0)
    assert summary.total == 10
    assert str(summary).startswith("5 images, 3 PDF pages, 2 strokes requests (")
    before = await api.call("usage_summary", t0 - 3600, to_date=t0 - 1800)
    assert before.total == 0


async def test_the_summary_counts_a_run_that_began_mid_second(make, own):
    """Usage is counted per second (or coarser): the window starts at its second, so the
    first requests of a run are not lost to a fractional start time."""
    api = make(**keys(own))
    start = time.time()
    await api.text(text_image())
    summary = await api.call("usage_summary", start)
    assert summary.images == 1
    assert summary.from_date.endswith("+00:00") and "." not in summary.from_date


async def test_usage_query_parameters_reach_the_server(make, kind, own):
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(own), http_client=http)
    usage = await api.call(
        "ocr_usage",
        from_date="2024-01-01",
        to_date=datetime(2030, 1, 1, tzinfo=timezone.utc),
        group_by=["usage_type", "app_id"],
        timespan="day",
        usage_type="image",
        per_page=1000,
    )
    assert usage.records == ()
    (request,) = recorder.to("/v3/ocr-usage")
    params = request.url.params
    assert params.get_list("group_by") == ["usage_type", "app_id"]
    assert params["timespan"] == "day" and params["usage_type"] == "image"
    assert params["from_date"] == "2024-01-01" and params["to_date"].startswith("2030-01-01T")
    assert params["page"] == "1" and params["per_page"] == "1000"
    await close_http(http)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"group_by": "usage"}, "Did you mean 'usage_type'"),
        ({"timespan": "week"}, "hour, day, month, year"),
        ({"from_date": "yesterday"}, "ISO 8601"),
        ({"from_date": True}, "must be a date"),
        ({"per_page": 0}, "per_page must be an int >= 1"),
        ({"per_page": 5000}, "at most 1000"),
        ({"app_id": ""}, "non-empty string"),
    ],
)
async def test_bad_usage_queries_fail_before_sending(make, own, kwargs, says):
    api = make(**keys(own))
    with pytest.raises(ConfigurationError) as caught:
        await api.call("ocr_usage", **kwargs)
    assert says in str(caught.value)
    assert not own.log


# -- PDF history and deletion ------------------------------------------------------------------
async def test_pdf_results_page_through_and_filter(make, kind, own):
    api = make(**keys(own))
    ids = [await api.call("pdf_submit", pdf_bytes(1)) for _ in range(3)]

    async def listing(**kwargs: Any) -> list[dict[str, Any]]:
        iterator = api.client.pdf_results(**kwargs)
        if kind == "async":
            return [row async for row in iterator]  # type: ignore[union-attr]
        return list(iterator)  # type: ignore[arg-type]

    own.clear_log()
    rows = await listing(per_page=2)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    pages = [r for r in own.log if r.endpoint == "/v3/pdf-results"]
    assert len(pages) == 2  # a full page, then the short last one
    assert {"status", "num_pages", "input_file", "created_at"} <= set(rows[0])
    assert [r["id"] for r in await listing(pdf_id=ids[1])] == [ids[1]]
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert await listing(from_date=future) == []
    assert len(await api.call("pdf_results_page", page=1, per_page=2)) == 2
    with pytest.raises(OptionError, match="Did you mean 'pdf_id'"):
        await listing(pdfid="x")
    with pytest.raises(ConfigurationError, match="at most 100"):
        await listing(per_page=500)


async def test_pdf_delete_removes_the_outputs(make, kind, own):
    api = make(**keys(own))
    result = await api.call("pdf", pdf_bytes(1), poll_interval=0.05)
    gone = await api.call("pdf_delete", result.pdf_id)
    assert gone["deleted_at"] and gone["status"] == "completed"
    with pytest.raises(PdfError) as caught:
        await api.call("pdf_delete", result.pdf_id)
    assert caught.value.error_id == "pdf_unknown_id"
    with pytest.raises(PdfError):
        await api.call("pdf_download", result.pdf_id, "mmd")
    with pytest.raises(ConfigurationError, match="pdf_id"):
        await api.call("pdf_delete", "")


async def test_history_and_account_calls_need_keys(make, own):
    token = await make(**keys(own)).call("app_token", 60)
    api = make(app_token=token.app_token, region_urls=own.urls)
    own.clear_log()
    for name, args in (
        ("pdf_delete", ("x",)),
        ("ocr_usage", ()),
        ("usage_summary", (time.time(),)),
        ("app_token_get", (token,)),
        ("app_token_delete", (token,)),
        ("pdf_results_page", ()),
    ):
        with pytest.raises(NotAllowedError):
            await api.call(name, *args)
    with pytest.raises(NotAllowedError):
        api.client.pdf_results()
    assert not own.log


# -- app tokens --------------------------------------------------------------------------------
async def test_app_token_get_and_delete(make, kind, own, caplog):
    caplog.set_level(logging.DEBUG)  # httpx logs every URL at INFO, httpcore more at DEBUG
    events: list[Event] = []
    api = make(**keys(own), observers=[events.append])
    token = await api.call("app_token", 120, user_id="student-7")
    info = await api.call("app_token_get", token)
    assert isinstance(info, AppTokenInfo)
    assert info.app_token == token.app_token and info.user_id == "student-7"
    assert info.app_id == own.app_id and info.group_id
    assert info.expires_at == pytest.approx(token.expires_at, abs=1)
    by_text = await api.call("app_token_get", token.app_token)
    assert by_text == info

    user = make(app_token=token.app_token, region_urls=own.urls)
    assert (await user.text(text_image())).text.startswith("echo")
    deleted = await api.call("app_token_delete", token)
    assert deleted.app_token == token.app_token and deleted.expires_at is None
    with pytest.raises(TokenError) as caught:
        await api.call("app_token_get", token)
    assert caught.value.error_id == "token_unknown"
    with pytest.raises(TokenError):
        await user.text(text_image())  # revoked: it stops working at once

    texts = [repr(info), repr(deleted), *error_text(caught.value)]
    texts += [f"{e.path} {e.cause}" for e in events]
    texts.append(caplog.text)
    assert "/v3/app-tokens/***" in caplog.text  # the lookups were logged, masked
    scan_for_secrets(texts, [token.app_token, own.app_key])
    assert any(e.path == "/v3/app-tokens/token_***" for e in events)  # masked in events


async def test_app_token_arguments_are_checked(make, own):
    api = make(**keys(own))
    for bad in ("", "a/b", 42):
        with pytest.raises(ConfigurationError, match="pass the app token"):
            await api.call("app_token_get", bad)
    with pytest.raises(ConfigurationError, match="whole seconds"):
        await api.call("app_token", 1.5)
    with pytest.raises(ConfigurationError, match="user_id"):
        await api.call("app_token", 60, user_id="")
    assert not own.log


# -- the result of an async submit() ---------------------------------------------------------
async def test_ocr_result_waits_for_an_async_submit_on_the_client_clock(make, kind, own):
    from PIL import Image

    from mathpix_nb import FakeClock, OcrError, PollTimeoutError

    own.configure(async_delay=0.3)
    clock = FakeClock()
    api = make(**keys(own), clock=clock)
    image = png_bytes(text_image(label="later"))
    request_id = await api.call("submit", image)
    result = await api.call("ocr_result", request_id, timeout=10_000)
    assert result.request_id == request_id
    assert result.text == (await api.text(image)).text
    assert clock.sleeps  # it polled, waiting on the client's clock
    own.configure(async_delay=0.0)
    blank = await api.call("submit", Image.new("RGB", (60, 60), "white"))
    with pytest.raises(OcrError) as caught:
        await api.call("ocr_result", blank, poll_interval=0.05)
    assert caught.value.error_id == "image_no_content"
    with pytest.raises(PollTimeoutError, match="ocr_results\\(request_id="):
        await api.call("ocr_result", "2020_01_01_unknown", timeout=1)
