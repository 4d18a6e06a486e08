"""The key (and the tokens) never show up in responses, log lines or exceptions."""

from __future__ import annotations

import logging

import httpx
import pytest

from mathpix_nb import Mathpix, MathpixError

from .conftest import ALICE, BOB


def test_key_and_tokens_never_leak(start_service, upstream, png_bytes, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and uvicorn included
    key = upstream.app_key
    wrong_key = "a-wrong-key-the-operator-typed-0042"
    seen: list[str] = []  # response heads and bodies
    errors: list[BaseException] = []
    tokens: list[str] = []

    def record(r: httpx.Response) -> httpx.Response:
        seen.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        if r.status_code == 200 and "app_token" in r.text:
            tokens.append(r.json()["app_token"])
        return r

    svc = start_service(rate_limit_per_minute=3, expires=60)
    broken = start_service(app_key=wrong_key)
    alice = {"Authorization": f"Bearer {ALICE}"}
    with httpx.Client() as http:
        record(http.post(f"{svc.url}/token", headers=alice, json={"expires": 30}))
        record(http.post(f"{svc.url}/token"))
        record(http.post(f"{svc.url}/token", headers={"Authorization": "Bearer guess-guess-guess"}))
        record(http.post(f"{svc.url}/token", headers=alice, content=b"{oops"))
        record(http.get(f"{svc.url}/token", headers=alice))
        record(http.get(f"{svc.url}/nothing-here"))
        record(http.get(f"{svc.url}/health"))
        record(http.post(f"{broken.url}/token", headers=alice))
        for _ in range(3):  # into the rate limit
            record(http.post(f"{svc.url}/token", headers=alice))
    assert any(s.startswith("429") for s in seen) and any(s.startswith("502") for s in seen)

    with Mathpix(token_url=f"{svc.url}/token", token_auth=BOB, region_urls=upstream.urls) as c:
        assert c.text(png_bytes).text
        client_repr = repr(c)
    for auth, url in ((ALICE, svc.url), ("not-a-caller-0123456789", svc.url), (BOB, broken.url)):
        with (
            Mathpix(
                token_url=f"{url}/token", token_auth=auth, max_retries=0, region_urls=upstream.urls
            ) as c,
            pytest.raises(MathpixError) as info,
        ):
            c.text(png_bytes)
        errors.append(info.value)

    captured = capfd.readouterr()
    log_text = "\n".join(
        [caplog.text, captured.out, captured.err]
        + [r.getMessage() for r in caplog.records]
        + [repr(r.args) for r in caplog.records]
    )
    exception_text = "\n".join(f"{e!s} {e!r} {e.__dict__!r}" for e in errors)
    reprs = "\n".join(
        [client_repr, repr(svc.app.state.token_service), repr(broken.app.state.token_service)]
    )
    assert tokens, "the scenario must have issued tokens"
    assert any("issued app token caller=alice" in m for m in caplog.messages)
    for secret in (key, wrong_key):
        for name, text in (
            ("response", "\n".join(seen)),
            ("log", log_text),
            ("exception", exception_text),
            ("repr", reprs),
        ):
            assert secret not in text, f"the key appeared in a {name}"
    for token in tokens:
        assert token not in log_text
        assert token not in exception_text
    for secret in (ALICE, BOB):
        assert secret not in log_text and secret not in exception_text
