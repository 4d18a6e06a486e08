"""The token endpoint over real HTTP: who gets a token, for how long, and what is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import ALICE, BOB


def _app_token_calls(upstream: Any) -> int:
    return sum(1 for r in upstream.log if "app-tokens" in r.endpoint)


def test_caller_with_secret_gets_a_token_in_the_mathpix_shape(
    http, start_service, upstream
) -> None:
    svc = start_service(expires=120)
    before = time.time() * 1000
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"app_token", "app_token_expires_at"}
    assert body["app_token"].startswith("token_")
    assert before + 100_000 < body["app_token_expires_at"] <= time.time() * 1000 + 121_000
    assert r.headers["cache-control"] == "no-store"


def test_caller_may_ask_for_shorter_but_never_longer(http, start_service) -> None:
    svc = start_service(expires=120, min_expires=1)
    auth = {"Authorization": f"Bearer {ALICE}"}

    def lifetime(expires: int) -> float:
        r = http.post(f"{svc.url}/token", headers=auth, json={"expires": expires})
        assert r.status_code == 200, r.text
        return r.json()["app_token_expires_at"] / 1000 - time.time()

    assert 50 < lifetime(60) <= 61
    assert 110 < lifetime(43_200) <= 121  # capped at the configured lifetime


def test_asking_below_the_minimum_gets_the_minimum(http, start_service) -> None:
    svc = start_service(expires=120, min_expires=40)
    r = http.post(
        f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"}, json={"expires": 5}
    )
    assert r.status_code == 200
    assert 30 < r.json()["app_token_expires_at"] / 1000 - time.time() <= 41


def test_the_app_mounts_inside_another_asgi_app(http, upstream) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from mathpix_nb.tokens import ThreadedServer, create_app

    tokens = create_app(
        app_id=upstream.app_id,
        app_key=upstream.app_key,
        region_urls=upstream.urls,
        callers={"alice": ALICE},
    )
    outer = Starlette(routes=[Mount("/mathpix", app=tokens)])
    with ThreadedServer(outer) as server:
        ok = http.post(f"{server.url}/mathpix/token", headers={"Authorization": f"Bearer {ALICE}"})
        assert ok.status_code == 200 and ok.json()["app_token"].startswith("token_")
        assert http.post(f"{server.url}/mathpix/token").status_code == 401
        assert http.get(f"{server.url}/mathpix/token").status_code == 405


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-caller-secret-at-all"},
        {"Authorization": f"Bearer {ALICE}x"},
        {"Authorization": f"Basic {ALICE}"},
        {"Authorization": "Bearer"},
        {"app_key": "whatever"},
    ],
    ids=["none", "unknown", "near-miss", "wrong-scheme", "empty", "mathpix-headers"],
)
def test_no_or_wrong_credential_gets_401_and_no_token(
    http, shared_service, upstream, headers
) -> None:
    svc = shared_service
    upstream.clear_log()
    r = http.post(f"{svc.url}/token", headers=headers, json={"expires": 60})
    assert r.status_code == 401
    assert r.json()["error_info"]["id"] == "http_unauthorized"
    assert "token_" not in r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert _app_token_calls(upstream) == 0  # nothing was minted upstream


def test_rate_limited_caller_gets_429_with_retry_after_others_unaffected(
    http, start_service
) -> None:
    svc = start_service(rate_limit_per_minute=2)
    alice = {"Authorization": f"Bearer {ALICE}"}
    assert http.post(f"{svc.url}/token", headers=alice).status_code == 200
    assert http.post(f"{svc.url}/token", headers=alice).status_code == 200
    r = http.post(f"{svc.url}/token", headers=alice)
    assert r.status_code == 429
    assert r.json()["error_info"]["id"] == "http_max_requests"
    assert 1 <= int(r.headers["retry-after"]) <= 30
    assert "token_" not in r.text
    bob = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {BOB}"})
    assert bob.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/token", 405),
        ("PUT", "/token", 405),
        ("DELETE", "/token", 405),
        ("POST", "/health", 405),
        ("GET", "/", 404),
        ("POST", "/v3/app-tokens", 404),
        ("POST", "/v3/text", 404),
        ("GET", "/token/../admin", 404),
    ],
)
def test_everything_else_is_refused(http, shared_service, method, path, status) -> None:
    svc = shared_service
    r = http.request(method, f"{svc.url}{path}", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == status
    assert "token_" not in r.text
    if status == 405:
        assert "POST" in r.headers["allow"] or "GET" in r.headers["allow"]


def test_health_is_ok_without_credentials(http, shared_service) -> None:
    svc = shared_service
    r = http.get(f"{svc.url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        (b"{not json", "json_syntax"),
        (b"[1, 2]", "json_syntax"),
        (b'{"expires": -5}', "opts_value_out_of_range"),
        (b'{"expires": "soon"}', "opts_value_out_of_range"),
        (b'{"expires": true}', "opts_value_out_of_range"),
        (b'{"expires": Infinity}', "opts_value_out_of_range"),
        (b'{"expires": NaN}', "opts_value_out_of_range"),
    ],
)
def test_bad_body_is_400_naming_expires(http, shared_service, body, error_id) -> None:
    svc = shared_service
    r = http.post(
        f"{svc.url}/token",
        headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code == 400
    assert r.json()["error_info"]["id"] == error_id
    assert "expires" in r.json()["error"]


def test_oversized_body_is_refused(http, shared_service) -> None:
    svc = shared_service
    r = http.post(
        f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"}, content=b"x" * 10_000
    )
    assert r.status_code == 413


def test_prefix_serves_under_the_hub_service_path(http, start_service) -> None:
    svc = start_service(prefix="/services/mathpix-tokens/")
    auth = {"Authorization": f"Bearer {ALICE}"}
    assert http.post(f"{svc.url}/services/mathpix-tokens/token", headers=auth).status_code == 200
    assert http.post(f"{svc.url}/token", headers=auth).status_code == 404


def test_callers_from_a_file_of_hashes_and_from_the_environment(
    http, start_service, tmp_path
) -> None:
    from mathpix_nb.tokens import hash_secret

    carol, dave = "carol-secret-0123456789abc", "dave-secret-0123456789abcd"
    path = tmp_path / "callers"
    path.write_text(f"# team callers\ncarol {hash_secret(carol)}  # maths dept\n\n")
    svc = start_service(
        callers=None,
        callers_file=path,
        environ={"MATHPIX_NB_TOKEN_CALLERS": f"dave={hash_secret(dave)}"},
    )
    for secret in (carol, dave):
        r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200, r.text
    # the file holds only the hash: presenting the hash itself is not a credential
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {hash_secret(carol)}"})
    assert r.status_code == 401
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 401


def test_upstream_refusing_the_key_is_502_without_a_token(http, start_service, upstream) -> None:
    svc = start_service(app_key="not-the-right-key")
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 502
    assert "MATHPIX_APP_KEY" in r.json()["error"]
    assert "not-the-right-key" not in r.text


def test_upstream_unreachable_is_502(http, start_service) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    svc = start_service(base_url=dead)
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 502
    assert "cannot reach Mathpix" in r.json()["error"]
