"""Pure units: error mapping, configuration, retry policy, result models, request building."""

from __future__ import annotations

import json

import httpx
import pytest

import mathpix_nb
from mathpix_nb import (
    APIError,
    AppToken,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LatexResult,
    Mathpix,
    MathpixError,
    OcrError,
    OcrResult,
    PdfError,
    PdfResult,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    TokenError,
    error_for,
)
from mathpix_nb._protocol import Compute
from mathpix_nb._retry import RetryPolicy, parse_retry_after

from .conftest import text_image


def body(error_id: str, message: str = "msg", **info: object) -> dict[str, object]:
    return {"error": message, "error_info": {"id": error_id, "message": message, **info}}


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (401, body("http_unauthorized"), AuthenticationError),
        (401, body("account_disabled"), AuthenticationError),
        (200, body("unauthorized_token_request"), TokenError),
        (429, body("http_max_requests", limit_name="requests_per_minute"), RateLimitError),
        (429, body("http_max_requests", limit_name="image_monthly_limit"), QuotaExceededError),
        (429, body("http_max_requests", limit_name="page_monthly_limit"), QuotaExceededError),
        (200, body("sys_exception"), ServerError),
        (503, "<html>503 Service Unavailable</html>", ServerError),
        (200, body("opts_number_required", name="confidence_threshold"), InvalidRequestError),
        (200, body("sys_request_too_large"), InvalidRequestError),
        (200, body("image_missing"), InvalidRequestError),
        (200, body("image_no_content"), OcrError),
        (200, body("image_decode_error"), OcrError),
        (200, body("math_confidence"), OcrError),
        (200, body("pdf_encrypted"), PdfError),
        (200, body("pdf_something_new"), PdfError),
        (200, body("brand_new_id"), APIError),
        (400, {"weird": True}, InvalidRequestError),
    ],
)
def test_error_for_maps_by_id_and_status(status, payload, cls) -> None:
    exc = error_for(status, payload, source="eq.png")
    assert type(exc) is cls
    assert exc.status_code == status
    if isinstance(payload, dict) and "error_info" in payload:
        assert exc.error_id == payload["error_info"]["id"]  # type: ignore[index]
        assert exc.error_id in str(exc) and "eq.png" in str(exc)


def test_error_message_names_id_input_and_fix() -> None:
    exc = error_for(
        200, body("image_no_content", "Content not found", request_id="r9"), source="scan.jpg"
    )
    message = str(exc)
    assert message.startswith("image_no_content: Content not found (input: scan.jpg)")
    assert "Fix:" in message


def test_token_auth_401_is_token_error() -> None:
    assert type(error_for(401, body("http_unauthorized"), token_auth=True)) is TokenError


def test_retry_after_is_kept_on_rate_limit_errors() -> None:
    exc = error_for(
        429,
        body("http_max_requests", limit_name="requests_per_minute"),
        headers={"retry-after": "7"},
    )
    assert isinstance(exc, RateLimitError) and exc.retry_after == 7.0


def test_secrets_never_reach_messages() -> None:
    key = "supersecretkey-123456"
    exc = error_for(200, body("x", f"bad key {key} and token_0123456789abcdef0123"), secrets=(key,))
    assert key not in str(exc) and "token_0123456789abcdef" not in repr(exc)


def test_exceptions_are_exported_with_all() -> None:
    from mathpix_nb import _exceptions

    for name in _exceptions.__all__:
        assert getattr(mathpix_nb, name) is getattr(_exceptions, name)
    assert issubclass(mathpix_nb.ImageError, ValueError)
    assert issubclass(mathpix_nb.RequestTimeout, mathpix_nb.TransportError)
    classes = [getattr(_exceptions, n) for n in _exceptions.__all__]
    errors = [c for c in classes if isinstance(c, type) and issubclass(c, Exception)]
    assert len(errors) == len([n for n in _exceptions.__all__ if n[0].isupper()]) - 1  # ErrorInfo
    assert all(issubclass(c, MathpixError) for c in errors)


# -- configuration -------------------------------------------------------------------------
def test_keys_from_environment_and_langchain_names(monkeypatch) -> None:
    monkeypatch.setenv("MATHPIX_API_ID", "lc-id")
    monkeypatch.setenv("MATHPIX_API_KEY", "lc-key-secret")
    client = Mathpix()
    assert client.settings.app_id == "lc-id" and client.auth_mode == "keys"
    assert "lc-key-secret" not in repr(client) and "lc-key-secret" not in repr(client.settings)
    monkeypatch.setenv("MATHPIX_APP_ID", "app-id")
    monkeypatch.setenv("MATHPIX_APP_KEY", "app-key")
    assert Mathpix().settings.app_id == "app-id"  # the official names win


@pytest.mark.parametrize(
    ("kwargs", "env", "region", "url"),
    [
        ({}, {}, "global", "https://api.mathpix.com"),
        ({"region": "eu"}, {}, "eu", "https://eu.api.mathpix.com"),
        ({"region": "EU-Central-1"}, {}, "eu", "https://eu.api.mathpix.com"),
        ({}, {"MATHPIX_REGION": "eu"}, "eu", "https://eu.api.mathpix.com"),
        (
            {},
            {"MATHPIX_URL": "https://eu-central-1.api.mathpix.com"},
            "eu",
            "https://eu-central-1.api.mathpix.com",
        ),
        ({"base_url": "http://127.0.0.1:8000/"}, {}, "custom", "http://127.0.0.1:8000"),
        ({"region": "eu"}, {"MATHPIX_URL": "http://elsewhere"}, "eu", "https://eu.api.mathpix.com"),
        (
            {"region": "eu", "region_urls": {"eu": "http://127.0.0.1:9"}},
            {},
            "eu",
            "http://127.0.0.1:9",
        ),
    ],
)
def test_region_resolution(monkeypatch, kwargs, env, region, url) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = Mathpix("id", "key", **kwargs)
    assert (client.region, client.base_url) == (region, url)


def test_unknown_region_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"'global'.*'eu'"):
        Mathpix("id", "key", region="mars")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "MATHPIX_APP_ID and MATHPIX_APP_KEY"),
        ({"app_id": "only-id"}, "app_key"),
        ({"app_token": "t", "token_url": "http://x"}, "not both"),
        ({"use_app_tokens": True}, "app_id and app_key"),
        ({"app_id": "a", "app_key": "b", "base_url": "ftp://x"}, "http"),
    ],
)
def test_configuration_errors(kwargs, match) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Mathpix(**kwargs)


def test_missing_credentials_mention_the_offline_server() -> None:
    with pytest.raises(ConfigurationError) as info:
        Mathpix()
    assert "mathpix-nb serve" in str(info.value) and "LocalServer" in str(info.value)


# -- retry policy ----------------------------------------------------------------------------
def response(status: int, payload: object = None, headers: dict[str, str] | None = None):
    return httpx.Response(status, json=payload, headers=headers or {})


def test_retry_policy_classification() -> None:
    policy = RetryPolicy(max_retries=3)
    assert policy.delay_after_response(response(503), 0) is not None
    assert policy.delay_after_response(response(200, body("sys_exception")), 0) is not None
    per_minute = body("http_max_requests", limit_name="requests_per_minute")
    assert policy.delay_after_response(response(429, per_minute), 0) is not None
    monthly = body("http_max_requests", limit_name="image_monthly_limit")
    assert policy.delay_after_response(response(429, monthly), 0) is None
    assert policy.delay_after_response(response(200, body("image_no_content")), 0) is None
    assert policy.delay_after_response(response(401, body("http_unauthorized")), 0) is None
    assert policy.delay_after_response(response(503), 3) is None  # out of retries
    assert policy.delay_after_exception(httpx.ReadTimeout("t"), 0) is not None
    assert policy.delay_after_exception(httpx.RemoteProtocolError("x"), 0) is not None
    assert policy.delay_after_exception(httpx.UnsupportedProtocol("x"), 0) is None


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for attempt, cap in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 8.0)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2  # spread over the range


def test_retry_after_is_honoured() -> None:
    policy = RetryPolicy(base_delay=0.01)
    hinted = response(429, body("http_max_requests"), {"Retry-After": "3"})
    assert 3.0 <= policy.delay_after_response(hinted, 0) <= 4.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


# -- models ----------------------------------------------------------------------------------
def test_ocr_result_markdown_and_repr() -> None:
    raw = {
        "text": r"Price $5, area \( \pi r^2 \)" + "\n" + r"\[ E = mc^2 \]",
        "confidence": 0.98,
        "request_id": "r1",
        "latex_styled": "E=mc^2",
    }
    result = OcrResult(raw=raw)
    assert result.markdown() == "Price \\$5, area $\\pi r^2$\n\n$$\nE = mc^2\n$$\n"
    assert result._repr_markdown_() == result.markdown().strip()  # the static display view
    assert result.confidence == 0.98 and result.request_id == "r1" and result.raw is raw
    assert "0.980" in repr(result)
    assert OcrResult(raw={})._repr_markdown_().startswith("*(no text")


def test_latex_and_pdf_results() -> None:
    latex = LatexResult(raw={"latex_styled": "x^2", "latex_confidence": 0.5})
    assert latex.latex == "x^2" and latex.confidence == 0.5 and "$$" in latex._repr_markdown_()
    lines = {
        "pages": [
            {"page": 2, "lines": [{"text": "b"}]},
            {"page": 1, "lines": [{"text": "a1"}, {"text": "a2"}]},
        ]
    }
    pdf = PdfResult(
        pdf_id="p",
        status="completed",
        outputs={"mmd": b"\\( x \\)", "lines.json": json.dumps(lines).encode()},
    )
    assert pdf.mmd == "\\( x \\)" and pdf.pages == ["a1\na2", "b"]
    assert pdf._repr_markdown_() == "$x$"


def test_app_token_masks_itself_and_reads_ms_or_seconds() -> None:
    token = AppToken.from_response(
        {"app_token": "token_abcdef0123456789", "app_token_expires_at": "1649699265744"}
    )
    assert token.expires_at == pytest.approx(1649699265.744)
    assert "abcdef" not in repr(token) and "abcdef" not in str(token)
    assert (
        AppToken.from_response({"app_token": "t", "app_token_expires_at": 1649699265}).expires_at
        == 1649699265
    )


# -- request building (I/O-free) -----------------------------------------------------------
def _first_request(flow):
    step = next(flow)
    while isinstance(step, Compute):
        step = flow.send(step.func())
    return step


def test_local_images_are_multipart_file_plus_options_json() -> None:
    client = Mathpix("id", "key")
    request = _first_request(client._core.text(text_image(), options={"formats": ["text", "data"]}))
    assert request.headers["content-type"].startswith("multipart/form-data")
    content = request.read()
    assert b'name="file"' in content and b'name="options_json"' in content
    assert b'{"formats":["text","data"]}' in content
    assert b"base64" not in content


def test_urls_are_json_src() -> None:
    client = Mathpix("id", "key")
    request = _first_request(client._core.text("https://example.com/x.png"))
    assert json.loads(request.read()) == {"src": "https://example.com/x.png"}


def test_token_refresh_margin() -> None:
    from mathpix_nb._auth import Credentials
    from mathpix_nb._config import resolve_settings

    creds = Credentials(resolve_settings("id", "key", use_app_tokens=True))
    creds.store(AppToken(app_token="token_x", expires_at=1300.0, issued_at=1000.0))
    assert creds.usable_token(now=1260.0) is not None
    assert creds.usable_token(now=1275.0) is None  # inside 10 % of a 300 s lifetime
    creds.store(AppToken(app_token="token_y", expires_at=1030.0, issued_at=1000.0))
    assert creds.usable_token(now=1024.0) is not None  # at least 5 s ahead
    assert creds.usable_token(now=1026.0) is None
    creds.store(AppToken(app_token="token_z", expires_at=1002.0, issued_at=1000.0))
    assert creds.usable_token(now=1000.5) is not None  # but at most half the lifetime
