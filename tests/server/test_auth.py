"""Authentication: keys, app_key-only endpoints, app tokens (real expiry, limits, modes)."""

from __future__ import annotations

import time

import httpx
import pytest

from mathpix_nb.server import Faults, LocalServer

from .conftest import data_uri, echo_text

UNAUTHORIZED = {
    "error": "Invalid credentials",
    "error_info": {"id": "http_unauthorized", "message": "Invalid credentials"},
}


def test_keys_required(server, http, png):
    src = {"src": data_uri(png)}
    for headers in (
        {},
        {"app_id": server.app_id},
        {"app_key": server.app_key},
        {"app_id": "other", "app_key": server.app_key},
        {"app_id": server.app_id, "app_key": "wrong"},
    ):
        r = http.post("/v3/text", headers=headers, json=src)
        assert r.status_code == 401, headers
        assert r.json() == UNAUTHORIZED


def test_app_key_only_endpoints(server, http):
    only_key = {"app_key": server.app_key}
    assert http.get("/v3/ocr-results", headers=only_key).status_code == 200
    assert http.post("/v3/app-tokens", headers=only_key).json()["app_token"].startswith("token_")
    assert http.get("/v3/ocr-results", headers={"app_key": "bad"}).status_code == 401
    assert http.get("/v3/pdf-results", headers=only_key).status_code == 200


def test_app_token_lifecycle(server, http, keys, png):
    r = http.post("/v3/app-tokens", headers=keys, json={"expires": 60, "user_id": "u1"})
    body = r.json()
    token = body["app_token"]
    assert token.startswith("token_")
    expires_at = body["app_token_expires_at"]
    assert isinstance(expires_at, int) and abs(expires_at / 1000 - (time.time() + 60)) < 5
    info = http.get(f"/v3/app-tokens/{token}", headers=keys).json()
    assert info["app_token"] == token and info["app_id"] == server.app_id
    assert info["user_id"] == "u1" and "group_id" in info
    ocr = http.post("/v3/text", headers={"app_token": token}, json={"src": data_uri(png)}).json()
    assert ocr["text"] == echo_text(png)
    assert server.log[-1].auth_mode == "app_token"
    deleted = http.delete(f"/v3/app-tokens/{token}", headers=keys).json()
    assert deleted["app_token"] == token and "app_token_expires_at" not in deleted
    gone = http.get(f"/v3/app-tokens/{token}", headers=keys)
    assert gone.status_code == 200 and gone.json()["error_info"]["id"] == "token_unknown"
    after = http.post("/v3/text", headers={"app_token": token}, json={"src": data_uri(png)})
    assert after.status_code == 200
    assert after.json()["error_info"]["id"] == "unauthorized_token_request"
    assert token not in repr(server.log)


def test_token_expires_and_both_modes(png):
    with LocalServer(token_min_expires=0.5) as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        token = http.post("/v3/app-tokens", headers=keys, json={"expires": 0.5}).json()["app_token"]
        src = {"src": data_uri(png)}
        assert "text" in http.post("/v3/text", headers={"app_token": token}, json=src).json()
        time.sleep(0.7)
        expired = http.post("/v3/text", headers={"app_token": token}, json=src)
        assert expired.status_code == 200
        assert expired.json()["error_info"]["id"] == "unauthorized_token_request"
        srv.configure(expired_token_mode="401")
        expired = http.post("/v3/text", headers={"app_token": token}, json=src)
        assert expired.status_code == 401 and expired.json() == UNAUTHORIZED


def test_token_expires_range_and_strokes(http, keys):
    for expires in (10, 50000, "soon"):
        r = http.post("/v3/app-tokens", headers=keys, json={"expires": expires}).json()
        assert r["error_info"]["id"] in ("opts_value_out_of_range", "opts_number_required")
    r = http.post(
        "/v3/app-tokens", headers=keys, json={"expires": 600, "include_strokes_session_id": True}
    ).json()
    assert r["error_info"]["id"] == "opts_value_out_of_range"
    r = http.post(
        "/v3/app-tokens", headers=keys, json={"expires": 200, "include_strokes_session_id": True}
    ).json()
    assert r["strokes_session_id"].startswith("strokes_")


def test_token_restrictions(server, http, keys, png):
    token = http.post("/v3/app-tokens", headers=keys).json()["app_token"]
    tok = {"app_token": token}
    r = http.post("/v3/text", headers=tok, json={"src": data_uri(png), "async": True})
    assert r.status_code == 200 and r.json()["error_info"]["id"] == "unauthorized_token_request"
    r = http.post("/v3/batch", headers=tok, json={"urls": {"a": data_uri(png)}})
    assert r.status_code == 200 and r.json()["error_info"]["id"] == "unauthorized_token_request"
    for method, path in (
        ("POST", "/v3/pdf"),
        ("GET", "/v3/ocr-results"),
        ("GET", "/v3/pdf-results"),
        ("POST", "/v3/app-tokens"),
    ):
        r = http.request(method, path, headers=tok)
        assert r.status_code == 401, path


@pytest.mark.parametrize("mode,status", [("200", 200), ("401", 401)])
def test_token_expired_fault(png, mode, status):
    with LocalServer(faults=Faults(sequence=("token_expired",)), expired_token_mode=mode) as srv:
        http = httpx.Client(base_url=srv.url)
        token = http.post("/v3/app-tokens", headers=srv.credentials()).json()["app_token"]
        srv.configure(faults=Faults(token_expired=1.0))
        r = http.post("/v3/text", headers={"app_token": token}, json={"src": data_uri(png)})
        assert r.status_code == status
        assert r.json()["error_info"]["id"] in ("unauthorized_token_request", "http_unauthorized")
        srv.configure(faults=None)
        ok = http.post("/v3/text", headers={"app_token": token}, json={"src": data_uri(png)})
        assert ok.json()["text"] == echo_text(png)
        http.close()


def test_queued_token_expired_fault_waits_for_a_token_request(png):
    with (
        LocalServer(faults=Faults(sequence=("token_expired",))) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        src = {"src": data_uri(png)}
        token = http.post("/v3/app-tokens", headers=srv.credentials()).json()["app_token"]
        assert "text" in http.post("/v3/text", headers=srv.credentials(), json=src).json()
        r = http.post("/v3/text", headers={"app_token": token}, json=src).json()
        assert r["error_info"]["id"] == "unauthorized_token_request"
        assert "text" in http.post("/v3/text", headers={"app_token": token}, json=src).json()
        assert [rec.fault for rec in srv.log] == [None, None, "token_expired", None]
