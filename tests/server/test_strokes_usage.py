"""v3/strokes (digital ink, drawn for the engine) and v3/ocr-usage."""

from __future__ import annotations

from .conftest import data_uri, make_png

STROKES = {"strokes": {"x": [[10, 20, 30], [40, 40]], "y": [[10, 30, 10], [5, 50]]}}


def test_strokes_are_read_as_handwriting(server, http, keys):
    body = http.post("/v3/strokes", headers=keys, json={"strokes": STROKES, "tags": ["ink"]}).json()
    assert body["text"].startswith("echo ") and body["is_handwritten"] is True
    assert body["is_printed"] is False and body["request_id"]
    again = http.post("/v3/strokes", headers=keys, json={"strokes": STROKES}).json()
    assert again["text"] == body["text"]  # the same ink draws the same image
    other = http.post(
        "/v3/strokes", headers=keys, json={"strokes": {"strokes": {"x": [[0, 90]], "y": [[0, 90]]}}}
    ).json()
    assert other["text"] != body["text"]
    item = http.get("/v3/ocr-results", headers=keys, params={"tags": "ink"}).json()
    assert item["ocr_results"][0]["endpoint"] == "/v3/strokes"
    record = server.log[0]
    assert record.endpoint == "/v3/strokes" and record.image_sha256 is not None
    assert body["text"].endswith(record.image_sha256[:12])


def test_strokes_errors_and_app_token(server, http, keys):
    assert (
        http.post("/v3/strokes", headers=keys, json={}).json()["error_info"]["id"]
        == "strokes_missing"
    )
    bad = http.post(
        "/v3/strokes", headers=keys, json={"strokes": {"strokes": {"x": [[1, 2]], "y": [[1]]}}}
    ).json()
    assert bad["error_info"]["id"] == "strokes_syntax_error"
    empty = http.post(
        "/v3/strokes", headers=keys, json={"strokes": {"strokes": {"x": [], "y": []}}}
    ).json()
    assert empty["error_info"]["id"] == "strokes_no_content"
    big = {"strokes": {"strokes": {"x": [list(range(60000))], "y": [list(range(60000))]}}}
    assert (
        http.post("/v3/strokes", headers=keys, json=big).json()["error_info"]["id"]
        == "sys_request_too_large"
    )
    token = http.post(
        "/v3/app-tokens", headers=keys, json={"include_strokes_session_id": True}
    ).json()
    ok = http.post(
        "/v3/strokes",
        headers={"app_token": token["app_token"]},
        json={"strokes": STROKES, "strokes_session_id": token["strokes_session_id"]},
    )
    assert "text" in ok.json()


def test_ocr_usage_counts_by_type(server, http, keys):
    http.post("/v3/text", headers=keys, json={"src": data_uri(make_png(mark=1))})
    http.post("/v3/text", headers=keys, json={"src": data_uri(make_png(mark=2))})
    http.post("/v3/text", headers=keys, json={"src": data_uri(make_png(mark=3)), "async": True})
    http.post("/v3/strokes", headers=keys, json={"strokes": STROKES})
    usage = http.get("/v3/ocr-usage", headers=keys, params={"timespan": "day"}).json()
    counts = {row["usage_type"]: row["count"] for row in usage["ocr_usage"]}
    assert counts == {"image": 2, "image-async": 1, "strokes": 1}
    assert all(row["app_id"] == [server.app_id] for row in usage["ocr_usage"])
    eu = http.get(server.urls["eu"] + "/v3/ocr-usage", headers=keys).json()
    assert sum(row["count"] for row in eu["ocr_usage"]) == 4  # billing is account-wide
    only = http.get("/v3/ocr-usage", headers=keys, params={"usage_type": "strokes"}).json()
    assert [row["usage_type"] for row in only["ocr_usage"]] == ["strokes"]
    bad = http.get("/v3/ocr-usage", headers=keys, params={"timespan": "week"}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"
