"""The core's public hooks: typed options, observers, the clock, retry policy, proxy auth,
credential checks. Over loopback against the local server, both clients."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from mathpix_nb import (
    AsyncMathpix,
    AuthenticationError,
    ConfigurationError,
    Event,
    FakeClock,
    ImageError,
    Mathpix,
    OptionError,
    PollTimeoutError,
    RetryPolicy,
    error_info,
    is_fatal,
)
from mathpix_nb.server import Faults

from .conftest import keys, text_image

pytestmark = pytest.mark.anyio


def _pdf() -> bytes:
    buf = io.BytesIO()
    text_image(300, 400, label="p1").save(buf, "PDF")
    return buf.getvalue()


# -- options -------------------------------------------------------------------------------
async def test_unknown_option_is_a_type_error_naming_the_near_name(make, srv):
    api = make(**keys(srv))
    srv.clear_log()
    with pytest.raises(TypeError, match=r"'rm_spacse'.*Did you mean 'rm_spaces'"):
        await api.text(text_image(), rm_spacse=True)
    assert srv.log == []  # refused before anything was sent


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("rm_spaces", "yes", "must be bool"),
        ("formats", "text", "must be a list of str"),
        ("formats", {"text"}, "must be a list of str"),
        ("confidence_threshold", float("nan"), "must be float"),
        ("metadata", {"when": object()}, "cannot be sent as JSON"),
        ("region", {"top_left_x": 1}, "must be a dict with"),
    ],
)
async def test_wrong_typed_option_names_it(make, srv, option, value, fragment):
    srv.clear_log()
    with pytest.raises(OptionError, match=fragment) as info:
        await make(**keys(srv)).text(text_image(), **{option: value})
    assert option in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert srv.log == []


async def test_extra_options_pass_newer_api_options_through(make, srv):
    srv.clear_log()
    result = await make(**keys(srv)).text(text_image(), extra_options={"brand_new": True})
    assert "echo" in result.text


async def test_improve_mathpix_goes_into_metadata(make, srv):
    api = make(**keys(srv))
    rid = await api.call("submit", text_image(), tags=["privacy-probe"], improve_mathpix=False)
    assert rid
    assert await api.results(tags=["privacy-probe"]) == []  # not stored: privacy mode


def test_client_constructor_typos_suggest_the_name() -> None:
    with pytest.raises(TypeError, match="Did you mean 'region'"):
        Mathpix("id", "key", regoin="eu")  # type: ignore[call-arg]
    with pytest.raises(OptionError, match="http_client"):
        Mathpix("id", "key", http_client=httpx.AsyncClient())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"region": 5}, "region must be a string"),
        ({"region": "mars"}, "Unknown Mathpix region"),
        ({"timeout": "x"}, "timeout must be seconds"),
        ({"timeout": -1}, "positive"),
        ({"max_retries": -1}, "max_retries"),
        ({"base_url": "ftp://x"}, "http:// or https://"),
        ({"base_url": ""}, "base_url is empty"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"clock": object()}, "clock must have"),
        ({"observers": [1]}, "callables"),
    ],
)
def test_bad_client_settings_are_configuration_errors(kwargs, fragment) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Mathpix("id", "key", **kwargs)


@pytest.mark.parametrize(
    "key",
    ["secret-key-123\n", "  secret-key-123  "],
    ids=["trailing newline", "spaces"],
)
def test_credentials_are_stripped(key: str) -> None:
    client = Mathpix("id", key)
    assert client.settings.app_key == "secret-key-123"


@pytest.mark.parametrize("key", ["secr et-key-123", "sécret-key-123", "secret\tkey"])
def test_malformed_credentials_are_refused_without_echo(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Mathpix("id", key)
    assert key.strip() not in str(info.value)
    assert "app_key" in str(info.value) and "console.mathpix.com" in str(info.value)


def test_malformed_key_from_the_environment_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("MATHPIX_APP_ID", "id")
    monkeypatch.setenv("MATHPIX_APP_KEY", "pasted key with words")
    with pytest.raises(ConfigurationError, match="MATHPIX_APP_KEY") as info:
        Mathpix()
    assert "pasted key" not in str(info.value)


# -- observers -----------------------------------------------------------------------------
async def test_observers_see_requests_answers_and_retries(make, srv):
    seen: list[Event] = []
    srv.configure(faults=Faults(sequence=("http_5xx",)))
    fast = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
    api = make(**keys(srv), retry=fast, observers=[seen.append])
    await api.text(text_image())
    kinds = [(e.kind, e.status_code) for e in seen if e.kind != "retry"]
    assert kinds == [("request", None), ("response", 503), ("request", None), ("response", 200)]
    (retry,) = [e for e in seen if e.kind == "retry"]
    assert retry.reason == "retry" and retry.cause == "HTTP 503" and retry.path == "/v3/text"


async def test_add_observer_returns_a_remover_and_a_broken_observer_breaks_nothing(make, srv):
    api = make(**keys(srv))
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    remove = api.client.add_observer(seen.append)
    api.client.add_observer(broken)
    await api.text(text_image())
    remove()
    await api.text(text_image())
    assert [e.kind for e in seen] == ["request", "response"]


async def test_rate_limit_waits_are_reported_as_such(make, fresh):
    fresh.configure(rate_limit_per_minute=1)
    seen: list[Event] = []
    clock = FakeClock()
    api = make(**keys(fresh), clock=clock, observers=[seen.append], max_retries=2)
    await api.text(text_image())
    with pytest.raises(Exception, match="http_max_requests"):
        await api.text(text_image())
    reasons = [e.reason for e in seen if e.kind == "retry"]
    assert reasons == ["rate_limit", "rate_limit"]


# -- the clock -----------------------------------------------------------------------------
async def test_pdf_polling_backs_off_on_the_clients_clock(make, srv):
    """Polls start fast and back off by 1.5x up to 5 s; with a FakeClock no real time passes,
    and the deadline is measured on the same clock."""
    srv.configure(pdf_step_delay=0.3)
    clock = FakeClock()
    api = make(**keys(srv), clock=clock)
    with pytest.raises(PollTimeoutError, match="not ready within 3 s"):
        await api.call("pdf", _pdf(), timeout=3)
    polls = [round(s, 3) for s in clock.sleeps]
    assert polls[:4] == [0.5, 0.75, 1.125, 0.625]  # the last wait is cut at the deadline
    assert abs(sum(clock.sleeps) - 3.0) < 1e-6
    srv.configure(pdf_step_delay=0.01)


async def test_retry_backoff_uses_the_clock(make, srv):
    srv.configure(faults=Faults(sequence=("http_5xx", "http_5xx", "http_5xx")))
    clock = FakeClock()
    policy = RetryPolicy(max_retries=3, base_delay=100.0, max_delay=1000.0)
    api = make(**keys(srv), clock=clock, retry=policy)
    assert "echo" in (await api.text(text_image())).text  # instantly, though waits are long
    assert len(clock.sleeps) == 3


async def test_minted_tokens_refresh_when_the_clock_passes_their_margin(make, srv):
    clock = FakeClock()
    api = make(**keys(srv), use_app_tokens=True, token_lifetime=60, clock=clock)
    await api.text(text_image())
    await api.text(text_image())
    mints = [r for r in srv.log if r.endpoint.endswith("app-tokens")]
    assert len(mints) == 1
    clock.advance(55)  # inside the refresh margin of a 60 s token
    await api.text(text_image())
    mints = [r for r in srv.log if r.endpoint.endswith("app-tokens")]
    assert len(mints) == 2


# -- crops of remote images ----------------------------------------------------------------
async def test_url_crop_outside_the_image_is_an_image_error(make, srv):
    url = srv.host_file(_png(text_image(100, 50)), "small.png")
    with pytest.raises(ImageError, match="crop"):
        await make(**keys(srv)).text(url, crop=(500, 500, 10, 10))


async def test_url_crop_of_a_missing_url_names_the_status(make, srv):
    with pytest.raises(ImageError, match="HTTP 404"):
        await make(**keys(srv)).text(srv.url + "/_local/files/nope.png", crop=(0, 0, 5, 5))


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


# -- errors --------------------------------------------------------------------------------
def test_error_info_reads_both_envelope_styles() -> None:
    v3 = error_info({"error": "Too many", "error_info": {"id": "http_max_requests", "count": 2}})
    assert v3 is not None and v3.id == "http_max_requests" and v3.detail["count"] == 2
    files = error_info(b'{"error": "format_not_ready", "status": "split"}')
    assert files is not None and files.id == "format_not_ready"
    nested = error_info({"error_info": {"id": "x", "detail": {"limit_name": "page_monthly_limit"}}})
    assert nested is not None and nested.detail["limit_name"] == "page_monthly_limit"
    assert error_info({"text": "fine"}) is None and error_info(b"<html>") is None


def test_fatal_errors_are_marked() -> None:
    from mathpix_nb import (
        AuthenticationError,
        NotAllowedError,
        OcrError,
        QuotaExceededError,
        RateLimitError,
        ServerError,
    )

    assert all(is_fatal(c("x")) for c in (AuthenticationError, NotAllowedError))
    assert is_fatal(QuotaExceededError("x")) and is_fatal(ConfigurationError("x"))
    assert not any(is_fatal(c("x")) for c in (RateLimitError, ServerError, OcrError))


# -- the team proxy ------------------------------------------------------------------------
def test_proxy_settings_from_the_environment(monkeypatch) -> None:
    for name in ("MATHPIX_APP_ID", "MATHPIX_APP_KEY", "MATHPIX_APP_TOKEN", "MATHPIX_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MATHPIX_PROXY_URL", "https://ocr.example.org/")
    monkeypatch.setenv("MATHPIX_PROXY_AUTH", "caller-secret-1")
    for cls in (Mathpix, AsyncMathpix):
        client: Any = cls()
        assert client.auth_mode == "proxy" and client.can_async
        assert client.base_url == "https://ocr.example.org"
        assert "caller-secret-1" not in repr(client) + repr(client.settings)


async def test_proxy_requests_carry_only_the_caller_secret(make, kind, srv):
    """Every request goes to the proxy URL with the bearer secret and no keys; the user's own
    httpx client (its event hooks) sees each one."""
    sent: list[httpx.Request] = []
    if kind == "async":

        async def hook(request: httpx.Request) -> None:
            sent.append(request)

        http: Any = httpx.AsyncClient(event_hooks={"request": [hook]})
    else:
        http = httpx.Client(event_hooks={"request": [sent.append]})
    api = make(proxy_url=srv.url, proxy_auth="caller-secret-2", http_client=http)
    with pytest.raises(AuthenticationError):  # the local server wants keys, not a bearer
        await api.text(text_image())
    assert sent and all(r.headers.get("authorization") == "Bearer caller-secret-2" for r in sent)
    assert not any("app_key" in r.headers or "app_id" in r.headers for r in sent)
    assert all(str(r.url).startswith(srv.url + "/v3/") for r in sent)
    await http.aclose() if kind == "async" else http.close()
