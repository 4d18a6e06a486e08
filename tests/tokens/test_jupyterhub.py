"""JupyterHub mode: a caller's hub API token is checked with GET {hub_api_url}/user."""

from __future__ import annotations

import logging

import pytest

from .conftest import ALICE


def test_hub_user_gets_a_token_and_is_logged_by_name(http, start_service, fake_hub, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mathpix_nb.tokens")
    svc = start_service(callers=None, hub_api_url=fake_hub.api_url)
    for scheme in ("token", "Bearer"):
        r = http.post(f"{svc.url}/token", headers={"Authorization": f"{scheme} hub-token-ana"})
        assert r.status_code == 200, r.text
        assert r.json()["app_token"].startswith("token_")
    assert fake_hub.seen[0] == "token hub-token-ana"  # the hub's own scheme
    issued = [m for m in caplog.messages if m.startswith("issued app token")]
    assert issued and all("caller=ana via=jupyterhub" in m for m in issued)
    assert not any("hub-token-ana" in m for m in caplog.messages)


def test_hub_answers_are_cached_briefly(http, start_service, fake_hub) -> None:
    svc = start_service(callers=None, hub_api_url=fake_hub.api_url)
    for _ in range(3):
        r = http.post(f"{svc.url}/token", headers={"Authorization": "token hub-token-ben"})
        assert r.status_code == 200
    assert len(fake_hub.seen) == 1


@pytest.mark.parametrize("token", ["hub-token-nobody", "hub-token-svc"], ids=["unknown", "service"])
def test_hub_refusal_or_service_token_is_401(
    http, start_service, fake_hub, upstream, token
) -> None:
    svc = start_service(callers=None, hub_api_url=fake_hub.api_url)
    upstream.clear_log()
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"token {token}"})
    assert r.status_code == 401
    assert "JUPYTERHUB_API_TOKEN" in r.json()["error"]  # tells the caller what to send
    assert "token_" not in r.text
    assert not [rec for rec in upstream.log if "app-tokens" in rec.endpoint]


def test_hub_group_allow_list(http, start_service, fake_hub) -> None:
    svc = start_service(callers=None, hub_api_url=fake_hub.api_url, hub_allowed_groups=["physics"])
    ana = http.post(f"{svc.url}/token", headers={"Authorization": "token hub-token-ana"})
    ben = http.post(f"{svc.url}/token", headers={"Authorization": "token hub-token-ben"})
    assert (ana.status_code, ben.status_code) == (200, 401)


def test_bearer_callers_and_hub_users_side_by_side(http, start_service, fake_hub) -> None:
    svc = start_service(hub_api_url=fake_hub.api_url)
    r = http.post(f"{svc.url}/token", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 200
    assert fake_hub.seen == []  # a known bearer secret never goes to the hub
    r = http.post(f"{svc.url}/token", headers={"Authorization": "token hub-token-ana"})
    assert r.status_code == 200


def test_hub_down_is_503_not_a_token(http, start_service, fake_hub) -> None:
    api_url = fake_hub.api_url
    fake_hub.shutdown()
    fake_hub.server_close()
    svc = start_service(callers=None, hub_api_url=api_url)
    r = http.post(f"{svc.url}/token", headers={"Authorization": "token hub-token-ana"})
    assert r.status_code == 503
    assert "JupyterHub" in r.json()["error"]
    assert "retry-after" in r.headers
