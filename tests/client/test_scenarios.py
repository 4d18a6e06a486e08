"""Both clients, the same scenarios, against the local server over real loopback HTTP."""

from __future__ import annotations

import base64
import io
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mathpix_nb import (
    AuthenticationError,
    ConfigurationError,
    ImageError,
    InvalidRequestError,
    MathpixError,
    NotAllowedError,
    OcrError,
    PdfError,
    PollTimeoutError,
    PreparedImage,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    RetryPolicy,
    TokenError,
    TransportError,
    prepare_image,
)
from mathpix_nb.server import Faults

from .conftest import (
    TokenEndpoint,
    error_text,
    keys,
    png_bytes,
    scan_for_secrets,
    sha12,
    text_image,
)

pytestmark = pytest.mark.anyio


def fast(retries: int = 3, **kwargs: Any) -> RetryPolicy:
    """The default retry rules with tiny waits (tests must stay fast): ``retry=fast()``."""
    return RetryPolicy(max_retries=retries, base_delay=0.01, max_delay=0.05, **kwargs)


def v3(srv: Any, endpoint: str = "/v3/text", *, at_least: int = 0) -> list[Any]:
    """Log records of ``endpoint``; waits briefly for ``at_least`` of them (the server may
    log a dropped connection just after the client saw it close)."""
    deadline = time.monotonic() + 2.0
    while True:
        records = [r for r in srv.log if r.endpoint == endpoint]
        if len(records) >= at_least or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


# -- every kind of image input --------------------------------------------------------------
def _inputs(tmp_path: Path, srv: Any) -> dict[str, tuple[Any, str]]:
    """input kind -> (the input, sha12 of the bytes the server must receive)."""
    im = text_image()
    data = png_bytes(im)
    path = tmp_path / "eq.png"
    path.write_bytes(data)
    sent = prepare_image(im).data  # what PIL/numpy inputs become
    return {
        "str path": (str(path), sha12(data)),
        "pathlib.Path": (path, sha12(data)),
        "bytes": (data, sha12(data)),
        "file object": (io.BytesIO(data), sha12(data)),
        "PIL image": (im, sha12(sent)),
        "numpy array": (np.asarray(im), sha12(sent)),
        "URL": (srv.host_file(data, "eq.png"), sha12(data)),
        "data URI": ("data:image/png;base64," + base64.b64encode(data).decode(), sha12(data)),
        "PreparedImage": (prepare_image(data), sha12(data)),
    }


async def test_every_image_input_reaches_the_server(make, srv, tmp_path):
    api = make(**keys(srv))
    for name, (image, expected) in _inputs(tmp_path, srv).items():
        result = await api.text(image)
        assert f"sha:{expected}" in result.text, name
        assert result.request_id and result.confidence == 1.0
    records = v3(srv)
    assert len(records) == 9 and all(r.status_code == 200 for r in records)
    assert {r.auth_mode for r in records} == {"keys"}


async def test_big_photo_is_prepared_upright_and_small(make, srv):
    """A phone-sized JPEG with EXIF rotation arrives upright and far under its file size."""
    im = text_image(4032, 3024)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    result = await make(**keys(srv)).text(buf.getvalue())
    width, height = (int(v) for v in result.text.split()[1].split("x"))
    assert height > width  # upright: portrait
    assert v3(srv)[-1].bytes_received < 150_000 < len(buf.getvalue())


async def test_crop_is_sent_as_the_cropped_pixels(make, srv):
    result = await make(**keys(srv)).text(text_image(400, 200), crop=(0, 0, 200, 100))
    assert "echo 200x100" in result.text


async def test_crop_of_a_url_is_cut_in_upright_pixels_like_any_other_image(make, srv):
    """One crop rule for every input: a URL with a crop is downloaded and cut here, in the
    pixels of the upright image (Mathpix's own region option would ignore EXIF)."""
    im = text_image(400, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, viewed portrait (200 wide, 400 high)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    url = srv.host_file(buf.getvalue(), "rotated.jpg")
    srv.clear_log()
    result = await make(**keys(srv)).text(url, crop=(0, 0, 150, 300))
    assert "echo 150x300" in result.text  # a portrait crop exists only in the upright image
    (record,) = v3(srv)
    assert record.bytes_received > 1000  # the cut pixels went up as a file, not a URL
    assert "region" not in result.text  # cut here, not by the API's region option


async def test_url_without_crop_is_sent_as_src(make, srv):
    url = srv.host_file(png_bytes(text_image()), "eq.png")
    srv.clear_log()
    result = await make(**keys(srv)).text(url)
    assert "echo 320x80" in result.text
    assert v3(srv)[-1].bytes_received < 1000  # only the JSON body with the URL went up


async def test_latex_endpoint(make, srv):
    result = await make(**keys(srv)).call("latex", text_image(), formats=["latex_styled"])
    assert "echo 320x80" in result.latex
    assert v3(srv, "/v3/latex")


async def test_blank_image_raises_ocr_error_naming_the_input(make, srv, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (50, 50), "white").save(path)
    with pytest.raises(OcrError) as info:
        await make(**keys(srv)).text(path)
    assert info.value.error_id == "image_no_content"
    assert "blank.png" in str(info.value) and "Fix:" in str(info.value)


async def test_missing_file_fails_before_sending(make, srv):
    with pytest.raises(ImageError, match=r"nope\.png"):
        await make(**keys(srv)).text("nope.png")
    assert srv.log == []


# -- async submit + paging ----------------------------------------------------------------
async def test_submit_with_tags_and_page_through_results(make, srv):
    api = make(**keys(srv))
    tag = uuid.uuid4().hex
    ids = [await api.call("submit", text_image(label=str(i)), tags=[tag]) for i in range(5)]
    await api.call("submit", text_image(), tags=["other"])
    items = await api.results(tags=[tag], per_page=2)
    assert sorted(item["image_id"] for item in items) == sorted(ids)
    pages = [r for r in srv.log if r.endpoint == "/v3/ocr-results"]
    assert len(pages) == 3  # 2 + 2 + 1


# -- auth modes ----------------------------------------------------------------------------
async def test_wrong_key_is_authentication_error_without_the_key(make, srv):
    bad = "wrong-key-1234567890"
    api = make(app_id=srv.app_id, app_key=bad, region_urls=srv.urls)
    with pytest.raises(AuthenticationError) as info:
        await api.text(text_image())
    assert info.value.status_code == 401
    scan_for_secrets([*error_text(info.value), repr(api.client)], [bad])
    assert len(v3(srv)) == 1  # not retried


async def test_fixed_app_token(make, srv):
    token = (await make(**keys(srv)).call("app_token", expires=60)).app_token
    api = make(app_token=token, region_urls=srv.urls)
    assert api.client.auth_mode == "app_token"
    assert "echo" in (await api.text(text_image())).text
    assert v3(srv)[-1].auth_mode == "app_token"
    assert token not in repr(api.client)


async def test_minted_app_tokens_are_cached(make, srv):
    api = make(**keys(srv), use_app_tokens=True)
    for _ in range(3):
        await api.text(text_image())
    assert len(v3(srv, "/v3/app-tokens")) == 1
    assert [r.auth_mode for r in v3(srv)] == ["app_token"] * 3


async def test_token_url_proxy_pattern(make, srv):
    with TokenEndpoint(srv, secret="caller-secret-42") as endpoint:
        api = make(token_url=endpoint.url, token_auth="caller-secret-42", region_urls=srv.urls)
        for _ in range(2):
            assert "echo" in (await api.text(text_image())).text
        assert endpoint.calls == 1
        bad = make(token_url=endpoint.url, token_auth="wrong", region_urls=srv.urls)
        with pytest.raises(AuthenticationError, match="token_auth") as info:
            await bad.text(text_image())
        scan_for_secrets(error_text(info.value), ["caller-secret-42", "wrong"])


async def test_token_refreshed_during_a_long_run(make, srv):
    """Tokens living 2 s; requests over ~5 s never fail and new tokens are fetched ahead."""
    api = make(**keys(srv), use_app_tokens=True, token_lifetime=2)
    deadline = time.monotonic() + 5
    count = 0
    while time.monotonic() < deadline:
        assert "echo" in (await api.text(text_image())).text
        count += 1
        time.sleep(0.1)
    mints = len(v3(srv, "/v3/app-tokens"))
    # refreshed ahead of expiry (about once a second: 2 s tokens, 1 s margin), cached between
    assert 3 <= mints <= 7 and mints < count
    assert all(r.ok for r in v3(srv))
    assert len(v3(srv)) == count  # no request needed a second try


@pytest.mark.parametrize("mode", ["200", "401"])
async def test_expired_token_answer_is_retried_once_with_a_new_token(make, srv, mode):
    srv.configure(
        expired_token_mode=mode, faults=Faults(sequence=("token_expired",), endpoints=("/v3/text",))
    )
    api = make(**keys(srv), use_app_tokens=True)
    assert "echo" in (await api.text(text_image())).text
    assert [r.status_code for r in v3(srv)] == [401 if mode == "401" else 200, 200]
    assert len(v3(srv, "/v3/app-tokens")) == 2


@pytest.mark.parametrize("mode", ["200", "401"])
async def test_expired_fixed_token_is_token_error(make, srv, mode):
    srv.configure(expired_token_mode=mode)
    token = "token_0123456789abcdef0123456789abcdef"
    api = make(app_token=token, region_urls=srv.urls)
    with pytest.raises(TokenError) as info:
        await api.text(text_image())
    scan_for_secrets(error_text(info.value), [token])


@pytest.mark.parametrize(
    "operation",
    [
        ("submit", (text_image(),)),
        ("pdf", (b"%PDF-1.4",)),
        ("pdf_submit", (b"%PDF-1.4",)),
        ("pdf_status", ("some-id",)),
        ("app_token", ()),
    ],
    ids=lambda op: op[0],
)
async def test_app_token_cannot_do_key_only_things_and_nothing_is_sent(make, srv, operation):
    name, args = operation
    api = make(app_token="token_abcdef0123456789", region_urls=srv.urls)
    with pytest.raises(NotAllowedError, match="app_id and app_key"):
        await api.call(name, *args)
    with pytest.raises(NotAllowedError):
        await api.results()
    assert srv.log == []


# -- regions -------------------------------------------------------------------------------
@pytest.mark.parametrize("region", ["eu", "eu-central-1", "global"])
async def test_region_keeps_every_request_on_its_host(make, srv, region):
    api = make(**keys(srv), region=region, use_app_tokens=True)
    await api.text(text_image())
    tag = uuid.uuid4().hex
    await api.call("submit", text_image(), tags=[tag])
    assert len(await api.results(tags=[tag])) == 1
    await api.call("app_token", expires=60)
    expected = "global" if region == "global" else "eu"
    assert api.client.region == expected
    assert len(srv.log) >= 5
    assert {r.region for r in srv.log} == {expected}


async def test_results_are_per_region(make, srv):
    tag = uuid.uuid4().hex
    await make(**keys(srv), region="global").call("submit", text_image(), tags=[tag])
    assert await make(**keys(srv), region="eu").results(tags=[tag]) == []
    assert len(await make(**keys(srv), region="global").results(tags=[tag])) == 1


async def test_eu_with_environment_variables(make, srv, monkeypatch):
    monkeypatch.setenv("MATHPIX_APP_ID", srv.app_id)
    monkeypatch.setenv("MATHPIX_APP_KEY", srv.app_key)
    monkeypatch.setenv("MATHPIX_REGION", "eu")
    api = make(region_urls=srv.urls)
    await api.text(text_image())
    assert [r.region for r in srv.log] == ["eu"]


# -- faults the server injects -------------------------------------------------------------
@pytest.mark.parametrize("fault", ["http_5xx", "sys_exception", "drop"])
async def test_transient_faults_are_retried(make, srv, fault):
    srv.configure(faults=Faults(sequence=(fault, fault)))
    api = make(**keys(srv, retry=fast()))
    assert "echo" in (await api.text(text_image())).text
    assert len(v3(srv, at_least=3)) == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [("http_5xx", "ServerError"), ("sys_exception", "ServerError"), ("drop", "TransportError")],
)
async def test_persistent_faults_raise_after_retries(make, srv, fault, error):
    srv.configure(faults=Faults(**{fault: 1.0}))
    api = make(**keys(srv), retry=fast(2))
    with pytest.raises(Exception) as info:
        await api.text(text_image())
    assert type(info.value).__name__ == error
    assert len(v3(srv, at_least=3)) == 3


async def test_submit_is_not_resent_after_a_connection_broke_mid_answer(make, srv):
    """An async job may already be accepted (and billed) when the answer is lost: no blind
    resend; the error says how to find it instead. text() keeps retrying (see above)."""
    srv.configure(faults=Faults(sequence=("drop",)))
    api = make(**keys(srv, retry=fast()))
    with pytest.raises(Exception) as info:
        await api.call("submit", text_image(), tags=["maybe-accepted"])
    assert isinstance(info.value, TransportError)
    assert type(info.value).__name__ == "SubmissionUncertain"
    assert "ocr_results(tags=" in str(info.value)
    assert len(v3(srv, at_least=1)) == 1


async def test_slow_answer_times_out_then_raises_request_timeout(make, srv):
    srv.configure(faults=Faults(slow=1.0, slow_seconds=1.0))
    api = make(**keys(srv), timeout=0.3, retry=fast(1))
    with pytest.raises(RequestTimeout) as info:
        await api.text(text_image())
    assert isinstance(info.value, TransportError)
    assert "timeout=" in str(info.value)


async def test_per_minute_rate_limit_is_retried_then_raised(make, fresh):
    fresh.configure(rate_limit_per_minute=1)
    api = make(**keys(fresh), retry=fast(2))
    await api.text(text_image())
    with pytest.raises(RateLimitError) as info:
        await api.text(text_image())
    assert not isinstance(info.value, QuotaExceededError)
    assert len(v3(fresh)) == 4  # 1 ok + 1 limited + 2 retries


async def test_retry_after_is_read(make, fresh):
    fresh.configure(rate_limit_per_minute=1, retry_after_header=True)
    api = make(**keys(fresh), retry=fast(3, max_retry_after=0.5))  # never wait a minute here
    await api.text(text_image())
    with pytest.raises(RateLimitError) as info:
        await api.text(text_image())
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
    assert len(v3(fresh)) == 2  # the hint is longer than we allow: no blind retries


async def test_monthly_quota_is_never_retried(make, fresh):
    fresh.configure(monthly_quota=1)
    api = make(**keys(fresh, retry=fast()))
    await api.text(text_image())
    with pytest.raises(QuotaExceededError, match="image_monthly_limit"):
        await api.text(text_image())
    assert len(v3(fresh)) == 2


async def test_connection_refused_is_transport_error(make):
    api = make(app_id="a", app_key="b", base_url="http://127.0.0.1:9", retry=fast(1))
    with pytest.raises(TransportError, match="local server running"):
        await api.text(text_image())


# -- PDF -----------------------------------------------------------------------------------
def _pdf_bytes(pages: int = 2) -> bytes:
    images = [text_image(600, 800, label=f"page {i + 1}") for i in range(pages)]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


@pytest.mark.parametrize("not_ready", [404, 202])
async def test_pdf_flow_submits_polls_and_downloads(make, srv, tmp_path, not_ready):
    srv.configure(pdf_not_ready_status=not_ready)
    path = tmp_path / "doc.pdf"
    path.write_bytes(_pdf_bytes())
    api = make(**keys(srv))
    result = await api.call(
        "pdf", path, outputs=("mmd", "md", "lines.json"), poll_interval=0.02, timeout=30
    )
    assert result.status == "completed"
    assert result.mmd and result.md is not None
    assert len(result.pages) == 2
    statuses = [r for r in srv.log if r.endpoint == "/v3/pdf/{pdf_id}"]
    assert len(statuses) >= 1


async def test_pdf_download_before_ready_says_so(make, srv):
    api = make(**keys(srv))
    pdf_id = await api.call("pdf_submit", _pdf_bytes(1))
    with pytest.raises(PdfError, match="not ready"):
        await api.call("pdf_download", pdf_id, "mmd")


async def test_pdf_of_garbage_raises_pdf_error(make, srv):
    with pytest.raises(PdfError) as info:
        await make(**keys(srv)).call("pdf", b"not a pdf", poll_interval=0.02, timeout=30)
    assert info.value.error_id


# -- configuration -------------------------------------------------------------------------
async def test_missing_credentials_explain_how_to_fix(make):
    with pytest.raises(ConfigurationError) as info:
        make()
    message = str(info.value)
    assert "MATHPIX_APP_ID" in message and "mathpix-nb serve" in message


async def test_prepared_image_round_trip_matches_sha(make, srv):
    prepared = prepare_image(text_image(3000, 2000))
    assert isinstance(prepared, PreparedImage)
    result = await make(**keys(srv)).text(prepared)
    assert prepared.sha256[:12] in result.text


# -- concurrency, pools, options -----------------------------------------------------------
async def test_concurrent_async_requests_share_one_token(srv):
    import anyio

    from mathpix_nb import AsyncMathpix

    async with AsyncMathpix(**keys(srv), use_app_tokens=True) as client:
        results: list[str] = []

        async def one(i: int) -> None:
            results.append((await client.text(text_image(label=f"n{i}"))).text)

        async with anyio.create_task_group() as group:
            for i in range(12):
                group.start_soon(one, i)
    assert len(results) == 12 and len(set(results)) == 12
    assert len(v3(srv, "/v3/app-tokens")) == 1


async def test_caller_owned_http_client_is_used_and_left_open(kind, srv):
    import httpx

    from mathpix_nb import AsyncMathpix, Mathpix

    if kind == "sync":
        with httpx.Client() as http:
            with Mathpix(**keys(srv), http_client=http) as client:
                client.text(text_image())
            assert not http.is_closed
    else:
        async with httpx.AsyncClient() as http:
            async with AsyncMathpix(**keys(srv), http_client=http) as client:
                await client.text(text_image())
            assert not http.is_closed
    assert len(v3(srv)) == 1


async def test_prepare_false_sends_the_file_as_it_is(make, srv):
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    text_image(2000, 1000).save(buf, "JPEG", exif=exif.tobytes())
    data = buf.getvalue()
    result = await make(**keys(srv), prepare=False).text(data)
    assert f"echo 2000x1000 sha:{sha12(data)}" in result.text  # sideways, untouched


async def test_pdf_from_url_and_failed_conversion(make, srv):
    api = make(**keys(srv))
    url = srv.host_file(_pdf_bytes(1), "doc.pdf")
    result = await api.call("pdf", url, poll_interval=0.02, timeout=30)
    assert result.mmd
    srv.configure(failing_conversions=("docx",))  # the server converts docx; make it fail
    try:
        with pytest.raises(PdfError, match="docx"):
            await api.call("pdf", url, outputs=("docx",), poll_interval=0.02, timeout=30)
    finally:
        srv.configure(failing_conversions=())


async def test_pdf_poll_deadline(make, srv):
    srv.configure(pdf_step_delay=1.0)
    try:
        with pytest.raises(PollTimeoutError, match="pdf_status"):
            await make(**keys(srv)).call("pdf", _pdf_bytes(1), poll_interval=0.05, timeout=0.2)
    finally:
        srv.configure(pdf_step_delay=0.05)


async def test_no_secret_in_any_repr_error_or_log(make, srv, caplog):
    """Keys and tokens never show in reprs, messages or logs, whatever the auth mode."""
    caplog.set_level("DEBUG")
    token = await make(**keys(srv)).call("app_token", expires=60)
    clients = [
        make(**keys(srv), retry=fast(1)),
        make(**keys(srv), use_app_tokens=True, retry=fast(1)),
        make(app_token=token.app_token, region_urls=srv.urls, retry=fast(1)),
    ]
    texts = [repr(token), str(token)]
    srv.configure(faults=Faults(sys_exception=1.0))
    for api in clients:
        texts += [repr(api.client), repr(api.client.settings)]
        with pytest.raises(MathpixError) as info:
            await api.text(text_image())
        texts += error_text(info.value)
        with pytest.raises(MathpixError) as info:
            await api.text(b"not an image")
        texts += error_text(info.value)
    assert any("retry 1/1" in r.getMessage() for r in caplog.records)
    texts += [r.getMessage() for r in caplog.records]
    scan_for_secrets(texts, [srv.app_key, token.app_token])


async def test_token_endpoint_rate_limit_is_retried(make, srv):
    with TokenEndpoint(srv, secret="s3cret-caller", busy_first=2) as endpoint:
        api = make(
            token_url=endpoint.url,
            token_auth={"Authorization": "Bearer s3cret-caller"},
            region_urls=srv.urls,
        )
        assert "echo" in (await api.text(text_image())).text
        assert (endpoint.refused, endpoint.calls) == (2, 1)


async def test_token_from_environment(make, srv, monkeypatch):
    token = (await make(**keys(srv)).call("app_token", expires=60)).app_token
    monkeypatch.setenv("MATHPIX_APP_TOKEN", token)
    api = make(region_urls=srv.urls)
    assert api.client.auth_mode == "app_token"
    await api.text(text_image())
    assert v3(srv)[-1].auth_mode == "app_token"


async def test_too_large_requests_are_not_retried(make, srv):
    buf = io.BytesIO()
    text_image(1500, 1500).save(buf, "BMP")  # uncompressed: 6.75 MB
    big = buf.getvalue()
    assert len(big) > 5 * 1024 * 1024
    api = make(**keys(srv, retry=fast()))
    with pytest.raises(InvalidRequestError, match="sys_request_too_large") as info:
        await api.text(big, prepare=False)
    assert "prepare=True" in str(info.value)
    uri = "data:image/png;base64," + base64.b64encode(big[: 2 * 1024 * 1024]).decode()
    with pytest.raises(InvalidRequestError, match="sys_request_too_large"):
        await api.text(uri)
    assert len(v3(srv)) == 2
    # prepared (the default), the same pixels go through
    assert "echo" in (await api.text(big)).text


async def test_sync_client_is_safe_across_threads(srv):
    from concurrent.futures import ThreadPoolExecutor

    from mathpix_nb import Mathpix

    with Mathpix(**keys(srv), use_app_tokens=True) as client, ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda i: client.text(text_image(label=f"t{i}")).text, range(24)))
    assert len(set(texts)) == 24
    assert all(r.ok for r in v3(srv))
    assert len(v3(srv, "/v3/app-tokens")) <= 8  # cached; at worst one fetch per thread


async def test_result_filters_are_sent_as_the_api_expects(make, srv):
    from datetime import datetime, timedelta, timezone

    api = make(**keys(srv))
    tag = uuid.uuid4().hex
    request_id = await api.call("submit", text_image(), tags=[tag, "second"])
    now = datetime.now(timezone.utc)
    found = await api.results(
        tags=[tag, "second"],
        is_printed=True,
        from_date=now - timedelta(minutes=5),
        to_date=now + timedelta(minutes=5),
    )
    assert [item["image_id"] for item in found] == [request_id]
    assert await api.results(tags=[tag], is_handwritten=True) == []
    assert [i["image_id"] for i in await api.results(request_id=request_id)] == [request_id]


async def test_wrong_base_url_path_says_how_to_fix(make, srv):
    api = make(app_id=srv.app_id, app_key=srv.app_key, base_url=srv.url + "/v3")
    with pytest.raises(InvalidRequestError, match="without /v3") as info:
        await api.text(text_image())
    assert info.value.status_code == 404


async def test_concurrent_requests_through_token_refreshes(srv):
    """Many tasks, short tokens: refreshes happen once at a time and no request fails."""
    import anyio

    from mathpix_nb import AsyncMathpix

    done = 0
    async with AsyncMathpix(**keys(srv), use_app_tokens=True, token_lifetime=2) as client:

        async def worker() -> None:
            nonlocal done
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                await client.text(text_image())
                done += 1
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(worker)
    mints = len(v3(srv, "/v3/app-tokens"))
    assert all(r.ok for r in v3(srv)) and len(v3(srv)) == done
    assert 2 <= mints <= 6  # about one per second of run, not one per request or task
