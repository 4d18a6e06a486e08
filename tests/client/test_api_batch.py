"""``client.batch()`` / ``batch_submit`` / ``batch_status`` / ``batch_wait`` (v3/batch)
against the local server over loopback, sync and async: results by key, per-key errors,
``ocr_behavior``, polling on the client's clock, callbacks, input checks."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mathpix_nb import (
    BatchResult,
    ConfigurationError,
    FakeClock,
    LatexResult,
    NotAllowedError,
    OcrError,
    OcrResult,
    OptionError,
    PollTimeoutError,
)

from ._api_support import Recorder, close_http
from .conftest import keys, png_bytes, sha12, text_image

pytestmark = pytest.mark.anyio


def images(srv: Any, n: int) -> tuple[dict[str, str], list[bytes]]:
    data = [png_bytes(text_image(label=f"item {i}")) for i in range(n)]
    return {f"img{i}": srv.host_file(d, f"i{i}.png") for i, d in enumerate(data)}, data


async def test_a_batch_answers_every_key_with_a_result_or_its_error(make, kind, srv, tmp_path):
    urls, data = images(srv, 2)
    inline = png_bytes(text_image(label="inline"))
    urls["inline"] = "data:image/png;base64," + base64.b64encode(inline).decode()
    urls["broken"] = "http://127.0.0.1:9/missing.png"  # nothing listens there
    api = make(**keys(srv))
    batch = await api.call("batch", urls, poll_interval=0.05)
    assert isinstance(batch, BatchResult) and batch.done and batch.pending == ()
    assert set(batch.keys) == set(urls)
    assert sorted(batch.results) == ["img0", "img1", "inline"]
    for i, blob in enumerate(data):
        result = batch.results[f"img{i}"]
        assert isinstance(result, OcrResult) and f"sha:{sha12(blob)}" in result.text
    assert f"sha:{sha12(inline)}" in batch.results["inline"].text
    error = batch.errors["broken"]
    assert isinstance(error, OcrError) and error.error_id == "image_download_error"
    assert "'broken'" in str(error)  # names the key
    assert "errors=1" in repr(batch)
    record = next(r for r in srv.log if r.endpoint == "/v3/batch")
    assert record.auth_mode == "keys"
    if kind == "sync":  # results convert with the client that made the batch
        assert batch.results["img0"].to_md(tmp_path / "a.md").read_text().startswith("echo")


async def test_latex_behaviour_and_per_url_options(make, kind, srv):
    recorder = Recorder()
    http = recorder.client_for(kind)
    urls, _ = images(srv, 2)
    api = make(**keys(srv), http_client=http)
    per_url: dict[str, Any] = {
        "img0": urls["img0"],
        "img1": {"url": urls["img1"], "formats": ["latex_styled", "text"]},
    }
    batch = await api.call(
        "batch", per_url, ocr_behavior="latex", formats=["latex_styled"], poll_interval=0.05
    )
    assert all(isinstance(r, LatexResult) for r in batch.results.values())
    (body,) = recorder.bodies("/v3/batch")
    assert body["ocr_behavior"] == "latex" and body["formats"] == ["latex_styled"]
    assert body["urls"]["img1"] == {"url": urls["img1"], "formats": ["latex_styled", "text"]}
    assert "app_key" in recorder.to("/v3/batch")[0].headers
    await close_http(http)


async def test_submit_status_and_wait_on_the_client_clock(make, kind, srv):
    srv.configure(latency_base=0.1)
    clock = FakeClock()
    api = make(**keys(srv), clock=clock)
    urls = [url for url in images(srv, 3)[0].values()]  # a list: keys "0", "1", "2"
    batch_id = await api.call("batch_submit", urls)
    assert isinstance(batch_id, str) and batch_id
    early = await api.call("batch_status", batch_id)
    assert early.keys == ("0", "1", "2") and early.pending  # the server is still reading
    done = await api.call("batch_wait", batch_id, timeout=10_000)
    assert done.done and sorted(done.results) == ["0", "1", "2"]
    assert clock.sleeps and clock.sleeps[0] == 1.0  # polls waited on the client's clock
    # batch() waits about 1 s per 5 images before its first poll, as the docs advise
    clock.sleeps.clear()
    await api.call("batch", urls, timeout=10_000)
    assert clock.sleeps[0] == 0.6


async def test_a_slow_batch_times_out_with_how_to_resume(make, srv):
    srv.configure(latency_base=3.0)
    api = make(**keys(srv), clock=FakeClock())
    urls, _ = images(srv, 1)
    with pytest.raises(PollTimeoutError, match=r"1 of 1 images pending.*batch_status\('\d+'\)"):
        await api.call("batch", urls, timeout=5)


async def test_a_batch_callback_is_posted(make, kind, srv):
    import anyio

    urls, _ = images(srv, 1)
    api = make(**keys(srv))
    hook = f"batch-hook-{kind}"
    callback = {"post": srv.inbox_url(hook), "reply": {"run": "r1"}}
    batch = await api.call("batch", urls, callback=callback, poll_interval=0.05)
    for _ in range(100):  # delivered after the last result, best effort
        if srv.inbox(hook):
            break
        await anyio.sleep(0.02)
    (message,) = srv.inbox(hook)
    assert message["json"]["reply"] == {"batch_id": batch.batch_id, "run": "r1"}


@pytest.mark.parametrize(
    ("urls", "kwargs", "error", "says"),
    [
        ({}, {}, ConfigurationError, "urls is empty"),
        ("https://x/a.png", {}, ConfigurationError, "must be a dict of key -> URL"),
        ({"a": "scan.png"}, {}, ConfigurationError, "not a URL"),
        ({"a": {"formats": ["text"]}}, {}, ConfigurationError, "['url'] must be an image URL"),
        ({"": "https://x/a.png"}, {}, ConfigurationError, "non-empty strings"),
        ({"a": "https://x/a.png"}, {"ocr_behavior": "math"}, ConfigurationError, '"text"'),
        ({"a": "https://x/a.png"}, {"ocr": ["math"]}, OptionError, "unexpected keyword"),
        (
            {"a": {"url": "https://x/a.png", "beam_size": 3}},
            {},
            OptionError,
            "beam_size",
        ),
        (
            {"a": "data:image/png;base64," + "A" * (5 * 1024 * 1024)},
            {},
            ConfigurationError,
            "over the 5 MB limit",
        ),
    ],
)
async def test_bad_batches_fail_before_sending(make, srv, urls, kwargs, error, says):
    api = make(**keys(srv))
    with pytest.raises(error) as caught:
        await api.call("batch_submit", urls, **kwargs)
    assert says in str(caught.value)
    assert not srv.log


async def test_batches_need_keys(make, srv):
    token = await make(**keys(srv)).call("app_token", 60)
    api = make(app_token=token.app_token, region_urls=srv.urls)
    srv.clear_log()
    with pytest.raises(NotAllowedError, match="batch"):
        await api.call("batch", {"a": "https://x/a.png"})
    with pytest.raises(NotAllowedError):
        await api.call("batch_status", "1")
    assert not srv.log


async def test_an_unknown_batch_is_an_error(make, srv):
    api = make(**keys(srv))
    with pytest.raises(Exception) as caught:
        await api.call("batch_status", "987654")
    assert getattr(caught.value, "error_id", None) == "batch_unknown_id"
