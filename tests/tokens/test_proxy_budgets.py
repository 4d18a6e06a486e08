"""Budgets and faults through the proxy process: refusals look like Mathpix's own, and the
upstream's 429/5xx reach the client unchanged (the proxy never retries)."""

from __future__ import annotations

import httpx
import pytest

from mathpix_nb import QuotaExceededError, RateLimitError
from mathpix_nb.tokens import hash_secret

from .conftest import ALICE, BOB
from .proxy_support import env_client, start_python

pytestmark = pytest.mark.timeout(90)

CALLERS = {"alice": hash_secret(ALICE), "bob": hash_secret(BOB)}


def test_image_and_page_quotas_are_per_caller(
    upstream, tmp_path, monkeypatch, png_bytes, pdf_bytes
):
    service = start_python(
        upstream,
        tmp_path / "svc.log",
        base_url=upstream.urls["global"],
        callers=CALLERS,
        proxy=True,
        quotas={"images_per_month": 3, "pages_per_month": 2},
    )
    try:
        alice = env_client(monkeypatch, service.url, ALICE, max_retries=0)
        for _ in range(3):
            alice.text(png_bytes)
        with pytest.raises(QuotaExceededError) as info:
            alice.text(png_bytes)
        assert info.value.error_id == "http_max_requests"
        assert "image_monthly_limit" in str(info.value)
        bob = env_client(monkeypatch, service.url, BOB, max_retries=0)
        assert bob.text(png_bytes).text  # bob's budget is his own
        # pages: the 2-page PDF uses the whole page budget, the next submission is refused
        alice.pdf(pdf_bytes)
        with pytest.raises(QuotaExceededError, match="page_monthly_limit"):
            alice.pdf(pdf_bytes)
        raw = httpx.post(
            f"{service.url}/v3/text",
            headers={"Authorization": f"Bearer {ALICE}"},
            files={"file": ("x.png", png_bytes, "image/png")},
        )
        assert raw.status_code == 429 and int(raw.headers["Retry-After"]) >= 1
        assert raw.json()["error_info"]["limit_value"] == 3
    finally:
        service.stop()
    assert "quota image_monthly_limit" in service.output()


def test_rate_limit_answers_like_mathpix(upstream, tmp_path, monkeypatch, png_bytes) -> None:
    service = start_python(
        upstream,
        tmp_path / "svc.log",
        base_url=upstream.urls["global"],
        callers=CALLERS,
        proxy=True,
        proxy_rate_limit_per_minute=6,
        proxy_rate_limit_burst=2,
    )
    try:
        alice = env_client(monkeypatch, service.url, ALICE, max_retries=0)
        alice.text(png_bytes)
        alice.text(png_bytes)
        with pytest.raises(RateLimitError) as info:
            alice.text(png_bytes)
        assert not isinstance(info.value, QuotaExceededError)
        assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 10
        # bob has his own bucket
        assert env_client(monkeypatch, service.url, BOB, max_retries=0).text(png_bytes).text
    finally:
        service.stop()


def test_upstream_faults_pass_through_unretried(tmp_path, monkeypatch, png_bytes) -> None:
    from mathpix_nb.server import Faults, LocalServer

    with LocalServer(engine="echo", retry_after_header=True) as up:
        service = start_python(
            up, tmp_path / "svc.log", base_url=up.url, callers=CALLERS, proxy=True
        )
        try:
            http = httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=20
            )
            files = {"file": ("x.png", png_bytes, "image/png")}
            up.configure(faults=Faults(sequence=("http_5xx",), endpoints=("/v3/text",)))
            before = len(up.log)
            answer = http.post("/v3/text", files=files)
            assert answer.status_code == 503 and len(up.log) == before + 1  # no retry here
            # the client's own retry policy handles it, unchanged
            up.configure(faults=Faults(sequence=("http_5xx", "sys_exception")))
            alice = env_client(monkeypatch, service.url, ALICE, max_retries=3)
            alice.retry.base_delay = 0.01
            assert alice.text(png_bytes).text
            # a dropped upstream connection: 502 sys_exception from the proxy
            up.configure(faults=Faults(sequence=("drop",), endpoints=("/v3/text",)))
            dropped = http.post("/v3/text", files=files)
            assert dropped.status_code == 502
            assert dropped.json()["error_info"]["id"] == "sys_exception"
            # Mathpix's own 429 (with Retry-After) passes through faithfully
            up.configure(faults=None, rate_limit_per_minute=1)
            up.reset_limits()
            http.post("/v3/text", files=files)
            limited = http.post("/v3/text", files=files)
            assert limited.status_code == 429 and "retry-after" in limited.headers
            assert limited.json()["error_info"]["limit_name"] == "requests_per_minute"
            http.close()
        finally:
            service.stop()
