"""A notebook-side client against the token service and the local Mathpix emulation."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from mathpix_nb import Mathpix

from .conftest import ALICE


def _text_requests(upstream: Any) -> list[Any]:
    return [r for r in upstream.log if r.endpoint.endswith("/v3/text")]


def test_client_ocrs_for_longer_than_one_token_lifetime(start_service, upstream, png_bytes, caplog):
    caplog.set_level(logging.INFO, logger="mathpix_nb.tokens")
    lifetime = 2
    svc = start_service(expires=lifetime, min_expires=1)
    service = svc.app.state.token_service
    upstream.clear_log()
    with Mathpix(
        token_url=f"{svc.url}/token", token_auth=ALICE, region_urls=upstream.urls, max_retries=0
    ) as client:
        assert client.auth_mode == "app_token"
        deadline = time.monotonic() + lifetime * 1.5
        results = []
        while time.monotonic() < deadline:
            results.append(client.text(png_bytes))
            time.sleep(0.2)
        finished_ms = time.time() * 1000
    assert len(results) >= 5
    assert all("120x40" in r.text for r in results)
    texts = _text_requests(upstream)
    assert len(texts) == len(results)
    assert all(r.auth_mode == "app_token" and r.status_code == 200 for r in texts)
    assert service.issued >= 2  # a fresh token was fetched once the first one ran out
    expiries = [
        int(m.rsplit("expires_at_ms=", 1)[1].split()[0])
        for m in caplog.messages
        if "issued app token" in m
    ]
    assert expiries[0] < finished_ms  # the run outlived the first token


def test_issued_token_really_expires_upstream(http, start_service, upstream, png_bytes):
    svc = start_service(expires=1, min_expires=1)
    token = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"}).json()
    headers = {"app_token": token["app_token"]}
    files = {"file": ("x.png", png_bytes, "image/png")}
    ok = http.post(f"{upstream.url}/v3/text", headers=headers, files=files)
    assert ok.status_code == 200 and "error" not in ok.json()
    time.sleep(max(0.0, token["app_token_expires_at"] / 1000 - time.time()) + 0.3)
    late = http.post(f"{upstream.url}/v3/text", headers=headers, files=files)
    assert late.json().get("error_info", {}).get("id") in {
        "unauthorized_token_request",
        "http_unauthorized",
    }


def test_eu_service_and_eu_client(start_service, upstream, png_bytes):
    svc = start_service(region="eu")
    assert svc.app.state.token_service.upstream.base_url == upstream.urls["eu"]
    upstream.clear_log()
    with Mathpix(
        token_url=f"{svc.url}/token", token_auth=ALICE, region="eu", region_urls=upstream.urls
    ) as client:
        assert "120x40" in client.text(png_bytes).text
    regions = {r.region for r in upstream.log}
    assert regions == {"eu"}


def test_wrong_caller_secret_is_an_authentication_error_for_the_client(start_service, png_bytes):
    from mathpix_nb import AuthenticationError

    svc = start_service()
    with (
        Mathpix(
            token_url=f"{svc.url}/token", token_auth="not-the-secret-000000", max_retries=0
        ) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.text(png_bytes)
    assert "not-the-secret-000000" not in str(info.value)
    assert "not-the-secret-000000" not in repr(info.value)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "success_key"),
    [
        ("POST", "/v3/pdf", {"json": {"url": "https://example.org/paper.pdf"}}, "pdf_id"),
        (
            "POST",
            "/v3/pdf",
            {"files": {"file": ("a.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")}},
            "pdf_id",
        ),
        ("GET", "/v3/ocr-results", {}, "ocr_results"),
    ],
    ids=["pdf-url", "pdf-upload", "ocr-results"],
)
def test_issued_token_cannot_reach_pdf_or_history(
    http, start_service, upstream, method, path, kwargs, success_key
):
    svc = start_service()
    token = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"}).json()
    refused = http.request(
        method, f"{upstream.url}{path}", headers={"app_token": token["app_token"]}, **kwargs
    )
    assert refused.status_code == 401, refused.text
    assert refused.json()["error_info"]["id"] == "http_unauthorized"
    assert success_key not in refused.json()
    # the same request with the key (which only the service holds) is served
    keys = {"app_id": upstream.app_id, "app_key": upstream.app_key}
    served = http.request(method, f"{upstream.url}{path}", headers=keys, **kwargs)
    assert served.status_code == 200 and success_key in served.json(), served.text


def test_client_recovers_from_an_early_expiry_through_the_service(
    start_service, upstream, png_bytes
):
    """Mathpix calls a token expired before its time (clock skew, revocation): the client gets
    a fresh one from the service and retries; otherwise it keeps using its cached token."""
    from mathpix_nb.server import Faults

    svc = start_service(expires=300)
    service = svc.app.state.token_service
    upstream.configure(faults=Faults(sequence=("token_expired",), endpoints=("/v3/text",)))
    try:
        with Mathpix(
            token_url=f"{svc.url}/token",
            token_auth=ALICE,
            region_urls=upstream.urls,
            max_retries=0,
        ) as client:
            results = [client.text(png_bytes) for _ in range(4)]
    finally:
        upstream.configure(faults=None)
    assert all("120x40" in r.text for r in results)
    assert service.issued == 2  # the first token, and one replacement after the expiry


def test_rate_limited_caller_sees_a_rate_limit_error_with_retry_after(
    start_service, upstream, png_bytes
):
    from mathpix_nb import RateLimitError

    svc = start_service(rate_limit_per_minute=1)
    options = {
        "token_url": f"{svc.url}/token",
        "token_auth": ALICE,
        "region_urls": upstream.urls,
        "max_retries": 0,
    }
    with Mathpix(**options) as first:
        assert first.text(png_bytes).text
    with Mathpix(**options) as second, pytest.raises(RateLimitError) as info:
        second.text(png_bytes)  # a new client must fetch its own token: over the limit
    assert info.value.status_code == 429
    assert info.value.retry_after is not None and info.value.retry_after >= 1


def test_notebook_on_jupyterhub_uses_its_hub_token(start_service, upstream, fake_hub, png_bytes):
    svc = start_service(
        callers=None, hub_api_url=fake_hub.api_url, prefix="/services/mathpix-tokens"
    )
    with Mathpix(
        token_url=f"{svc.url}/services/mathpix-tokens/token",
        token_auth="hub-token-ana",  # what JUPYTERHUB_API_TOKEN holds in ana's server
        region_urls=upstream.urls,
    ) as client:
        assert "120x40" in client.text(png_bytes).text
    assert fake_hub.seen == ["token hub-token-ana"]
