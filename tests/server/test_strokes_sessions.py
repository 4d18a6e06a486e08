"""Digital ink: the echo engine describes the strokes it got, live strokes sessions (app
token + ``strokes_session_id``) as browser demos and mpxpy send them, and the offline
engine reading drawn strokes."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from mathpix_nb.server import LocalServer

STROKE_A = {"x": [[10, 20, 30]], "y": [[10, 30, 10]]}
STROKE_B = {"x": [[40, 40]], "y": [[5, 50]]}
BOTH = {"x": STROKE_A["x"] + STROKE_B["x"], "y": STROKE_A["y"] + STROKE_B["y"]}


def ink(strokes: dict, **extra) -> dict:
    return {"strokes": {"strokes": strokes}, **extra}


def session(http: httpx.Client, keys: dict[str, str], **body) -> dict:
    token = http.post(
        "/v3/app-tokens",
        headers={"app_key": keys["app_key"]},
        json={"include_strokes_session_id": True, **body},
    ).json()
    assert token["strokes_session_id"].startswith("strokes_")
    return token


def test_echo_describes_the_strokes(http, keys):
    body = http.post("/v3/strokes", headers=keys, json=ink(BOTH)).json()
    assert body["text"].startswith("echo strokes:2 points:5 bbox:10,5,40,50 sha:")
    assert body["is_handwritten"] is True and body["is_printed"] is False


def test_live_session_with_an_app_token_as_a_browser_sends_it(server, http, keys):
    token = session(http, keys)
    # the page holds only the token: app_token header, strokes_session_id in the body
    headers = {"app_token": token["app_token"], "Origin": "http://localhost:3000"}
    first = http.post(
        "/v3/strokes",
        headers=headers,
        json=ink(STROKE_A, strokes_session_id=token["strokes_session_id"]),
    ).json()
    assert first["text"].startswith("echo strokes:1 points:3 ")
    # incremental client: sends only the new stroke; the session holds all the ink
    second = http.post(
        "/v3/strokes",
        headers=headers,
        json=ink(STROKE_B, strokes_session_id=token["strokes_session_id"]),
    ).json()
    assert second["text"].startswith("echo strokes:2 points:5 bbox:10,5,40,50")
    # resending client: the whole drawing again is not doubled
    third = http.post(
        "/v3/strokes",
        headers=headers,
        json=ink(BOTH, strokes_session_id=token["strokes_session_id"]),
    ).json()
    assert third["text"] == second["text"]
    # some demos send the session id as a header instead
    fourth = http.post(
        "/v3/strokes",
        headers={**headers, "strokes_session_id": token["strokes_session_id"]},
        json=ink(BOTH),
    ).json()
    assert fourth["text"] == second["text"]
    assert {r.auth_mode for r in server.log if r.endpoint == "/v3/strokes"} == {"app_token"}
    usage = http.get("/v3/ocr-usage", headers=keys).json()["ocr_usage"]
    assert {row["usage_type"]: row["count"] for row in usage} == {"strokes-session": 1}


def test_session_mode_switch(keys):
    with LocalServer(strokes_session_mode="append") as srv, httpx.Client(base_url=srv.url) as http:
        token = session(http, srv.credentials())
        sid = token["strokes_session_id"]
        for strokes in (STROKE_A, BOTH):
            body = http.post(
                "/v3/strokes",
                headers={"app_token": token["app_token"]},
                json=ink(strokes, strokes_session_id=sid),
            ).json()
        assert body["text"].startswith("echo strokes:3 ")  # appended, even when resent


def test_bad_sessions_are_refused(server, http, keys):
    mine, other = session(http, keys), session(http, keys)
    wrong = http.post(
        "/v3/strokes",
        headers={"app_token": mine["app_token"]},
        json=ink(STROKE_A, strokes_session_id=other["strokes_session_id"]),
    ).json()
    assert wrong["error_info"]["id"] == "unauthorized_token_request"
    unknown = http.post(
        "/v3/strokes", headers=keys, json=ink(STROKE_A, strokes_session_id="strokes_nope")
    ).json()
    assert unknown["error_info"]["id"] == "unauthorized_token_request" and unknown["request_id"]


def test_session_expires_with_its_token():
    with LocalServer(token_min_expires=0.5) as srv, httpx.Client(base_url=srv.url) as http:
        token = session(http, srv.credentials(), expires=0.5)
        time.sleep(0.6)
        late = http.post(
            "/v3/strokes",
            headers=srv.credentials(),
            json=ink(STROKE_A, strokes_session_id=token["strokes_session_id"]),
        ).json()
        assert late["error_info"]["id"] == "unauthorized_token_request"


def test_mpxpy_incremental_session_matches_one_shot(server):
    """mpxpy's own live test: stroke by stroke in a session == all strokes at once."""
    mathpix_client = pytest.importorskip("mpxpy.mathpix_client")
    client = mathpix_client.MathpixClient(
        app_id=server.app_id, app_key=server.app_key, api_url=server.url
    )
    one_shot = client.strokes_new(strokes=BOTH)
    sid = client.app_token_new(include_strokes_session_id=True)["strokes_session_id"]
    for i in range(2):
        result = client.strokes_new(
            strokes={"x": BOTH["x"][i : i + 1], "y": BOTH["y"][i : i + 1]}, strokes_session_id=sid
        )
    assert result["text"] == one_shot["text"]
    assert result.get("latex") == one_shot.get("latex")  # what mpxpy's test compares


# block letters as polylines in a 1 x 1.6 cell, drawn the way a pen samples points
GLYPHS = {
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1.6)]],
    "I": [[(0.5, 0), (0.5, 1.6)]],
    "L": [[(0, 0), (0, 1.6), (1, 1.6)]],
    "E": [[(1, 0), (0, 0), (0, 1.6), (1, 1.6)], [(0, 0.8), (0.8, 0.8)]],
}


def pen(word: str, size: float = 40) -> dict:
    xs, ys = [], []
    for n, ch in enumerate(word):
        for stroke in GLYPHS[ch]:
            points = [
                (a + (c - a) * k / 10, b + (d - b) * k / 10)
                for (a, b), (c, d) in itertools.pairwise(stroke)
                for k in range(10)
            ] + [stroke[-1]]
            xs.append([round(20 + (n * 1.5 + x) * size, 1) for x, _ in points])
            ys.append([round(20 + y * size, 1) for _, y in points])
    return {"x": xs, "y": ys}


def test_offline_engine_reads_drawn_strokes():
    pytest.importorskip("rapidocr")
    with LocalServer(engine="offline") as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        body = http.post("/v3/strokes", headers=srv.credentials(), json=ink(pen("TILE"))).json()
        assert body["text"] == "TILE" and body["is_handwritten"] is True
