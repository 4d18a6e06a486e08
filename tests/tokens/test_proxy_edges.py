"""CORS, EU pinning and a leak scan, with the service in its own process."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from mathpix_nb import MathpixError
from mathpix_nb.tokens import hash_secret

from .conftest import ALICE, BOB
from .proxy_support import env_client, service_env, start_cli, start_python

pytestmark = pytest.mark.timeout(90)
CALLERS = {"alice": hash_secret(ALICE), "bob": hash_secret(BOB)}
ALLOWED = "https://notebooks.example.org"


def test_cors_preflights_and_answers(upstream, tmp_path, png_bytes) -> None:
    service = start_python(
        upstream,
        tmp_path / "svc.log",
        base_url=upstream.urls["global"],
        callers=CALLERS,
        proxy=True,
        cors_origins=[ALLOWED],
    )
    plain = start_python(
        upstream,
        tmp_path / "plain.log",
        base_url=upstream.urls["global"],
        callers=CALLERS,
        proxy=True,
    )
    try:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        for path in ("/token", "/v3/text"):
            ok = httpx.options(f"{service.url}{path}", headers={"Origin": ALLOWED, **preflight})
            assert ok.status_code == 204
            assert ok.headers["access-control-allow-origin"] == ALLOWED
            assert "POST" in ok.headers["access-control-allow-methods"]
            assert "authorization" in ok.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in ok.headers
            other = httpx.options(
                f"{service.url}{path}", headers={"Origin": "https://evil.example", **preflight}
            )
            assert other.status_code == 403
            assert "access-control-allow-origin" not in other.headers
        put = httpx.options(
            f"{service.url}/v3/text",
            headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"},
        )
        assert put.status_code == 403
        auth = {"Authorization": f"Bearer {ALICE}"}
        answer = httpx.post(
            f"{service.url}/v3/text",
            headers={**auth, "Origin": ALLOWED},
            files={"file": ("x.png", png_bytes, "image/png")},
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        assert "Retry-After" in answer.headers["access-control-expose-headers"]
        token = httpx.post(f"{service.url}/token", headers={**auth, "Origin": ALLOWED})
        assert token.headers["access-control-allow-origin"] == ALLOWED
        refused = httpx.post(f"{service.url}/token", headers={"Origin": ALLOWED})
        assert refused.status_code == 401  # errors carry CORS too, so a page can read them
        assert refused.headers["access-control-allow-origin"] == ALLOWED
        foreign = httpx.post(f"{service.url}/token", headers={**auth, "Origin": "https://x.y"})
        assert "access-control-allow-origin" not in foreign.headers
        # default: no origins, no CORS headers at all
        none = httpx.options(f"{plain.url}/token", headers={"Origin": ALLOWED, **preflight})
        assert "access-control-allow-origin" not in none.headers
        assert none.status_code in (404, 405)
    finally:
        service.stop()
        plain.stop()


def test_eu_mode_refuses_a_non_eu_upstream(upstream, tmp_path) -> None:
    callers = tmp_path / "callers"
    callers.write_text(f"alice {hash_secret(ALICE)}\n")
    for args, extra in (
        (["--region", "eu", "--base-url", upstream.urls["eu"]], {}),
        (["--eu-only"], {"MATHPIX_URL": "https://api.mathpix.com"}),
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mathpix_nb",
                "token-server",
                "--proxy",
                "--callers-file",
                str(callers),
                *args,
            ],
            env=service_env(upstream, **extra),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "EU-only mode refuses to start" in done.stderr


def test_eu_mode_forwards_only_to_the_eu_host(
    upstream, tmp_path, monkeypatch, png_bytes, pdf_bytes
) -> None:
    service = start_python(
        upstream,
        tmp_path / "svc.log",
        region="eu",
        region_urls=upstream.urls,  # the LocalServer stands in for both Mathpix hosts
        callers=CALLERS,
        proxy=True,
    )
    try:
        before = len(upstream.log)
        alice = env_client(monkeypatch, service.url, ALICE)
        alice.text(png_bytes)
        alice.submit(png_bytes, tags=["eu-run"])
        assert len(list(alice.ocr_results(tags=["eu-run"]))) == 1
        alice.pdf(pdf_bytes)
        httpx.post(f"{service.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
        regions = {r.region for r in upstream.log[before:]}
        assert regions == {"eu"}
        assert httpx.get(f"{service.url}/health").json()["region"] == "eu"
    finally:
        service.stop()


def test_nothing_secret_in_output_answers_or_errors(
    upstream, tmp_path, monkeypatch, png_bytes, pdf_bytes, capfd
) -> None:
    callers = tmp_path / "callers"
    callers.write_text(f"alice {hash_secret(ALICE)}\nbob {hash_secret(BOB)}\n")
    service = start_cli(
        upstream,
        tmp_path / "svc.log",
        "--proxy",
        "--callers-file",
        str(callers),
        "--proxy-rate-limit",
        "30",
        "--proxy-burst",
        "12",
        "--log-level",
        "debug",
        MATHPIX_URL=upstream.urls["global"],
    )
    seen: list[str] = []
    errors: list[str] = []
    tokens: list[str] = []
    try:
        alice = env_client(monkeypatch, service.url, ALICE, max_retries=0)
        seen.append(repr(alice))
        seen.append(repr(alice.text(png_bytes)))
        token = alice.app_token(expires=60)
        tokens.append(token.app_token)
        seen.append(repr(alice.app_token_get(token.app_token)))
        minted = httpx.post(f"{service.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
        tokens.append(minted.json()["app_token"])
        seen.append(repr(alice.pdf(pdf_bytes)))
        bob = env_client(monkeypatch, service.url, BOB, max_retries=0)
        wrong = env_client(monkeypatch, service.url, "not-a-caller-secret-000000", max_retries=0)
        for call in (
            lambda: bob.app_token_get(token.app_token),
            lambda: wrong.text(png_bytes),
            lambda: [alice.text(png_bytes) for _ in range(20)],  # into the rate limit
        ):
            try:
                call()
            except MathpixError as exc:
                errors.append(f"{exc!s} {exc!r} {exc.__dict__!r}")
        with httpx.Client(base_url=service.url) as http:
            for path in ("/v3/ocr-results", "/v3/ocr-usage", f"/v3/app-tokens/{token.app_token}"):
                r = http.get(path, headers={"Authorization": f"Bearer {BOB}"})
                seen.append(f"{r.status_code} {dict(r.headers)} {r.text}")
    finally:
        service.stop()
    output = service.output()
    assert "proxy caller=bearer:alice" in output and "upstream_request_id=" in output
    assert len(errors) == 3
    captured = capfd.readouterr()
    everything = {
        "service output": output,
        "answers and reprs": "\n".join(seen),
        "exceptions": "\n".join(errors),
        "client output": captured.out + captured.err,
    }
    png_marker = png_bytes[16:48]
    for where, text in everything.items():
        for secret in (upstream.app_key, ALICE, BOB, *tokens):
            assert secret not in text, f"a secret appeared in the {where}"
        assert png_marker.decode("latin-1") not in text
    assert "/v3/app-tokens/token_" not in output


def test_hub_users_and_the_operator_allow_list(upstream, tmp_path, fake_hub, png_bytes) -> None:
    """JupyterHub tokens work on the proxy as on /token; --proxy-endpoints opens `usage`."""
    service = start_cli(
        upstream,
        tmp_path / "svc.log",
        "--proxy",
        "--jupyterhub",
        "--hub-api-url",
        fake_hub.api_url,
        "--proxy-endpoints",
        "ocr,usage",
        MATHPIX_URL=upstream.urls["global"],
    )
    try:
        with httpx.Client(base_url=service.url, timeout=20) as http:
            ana = {"Authorization": "token hub-token-ana"}
            text = http.post("/v3/text", headers=ana, files={"file": ("x.png", png_bytes)})
            assert text.status_code == 200
            assert http.get("/v3/ocr-usage", headers=ana).status_code == 200
            assert http.get("/v3/ocr-results", headers=ana).status_code == 403  # not allowed
            service_token = {"Authorization": "token hub-token-svc"}
            assert http.get("/v3/ocr-usage", headers=service_token).status_code == 401
    finally:
        service.stop()
    record = [r for r in upstream.log if r.endpoint == "/v3/text"][-1]
    assert "mathpix-nb-caller:jupyterhub:ana" in record.tags
    assert "hub-token-ana" not in service.output()
