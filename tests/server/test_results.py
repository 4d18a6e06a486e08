"""async: true, v3/ocr-results filters and paging, per-region stores, improve_mathpix."""

from __future__ import annotations

import time

import httpx

from mathpix_nb.server import LocalServer

from .conftest import data_uri, echo_text, make_png


def submit(http: httpx.Client, keys: dict[str, str], mark: int, **options) -> str:
    r = http.post("/v3/text", headers=keys, json={"src": data_uri(make_png(mark=mark)), **options})
    assert r.status_code == 200
    return r.json()["request_id"]


def results(http: httpx.Client, key: str, params=None) -> list[dict]:
    r = http.get("/v3/ocr-results", headers={"app_key": key}, params=params)
    assert r.status_code == 200, r.text
    return r.json()["ocr_results"]


def wait_for(http: httpx.Client, key: str, request_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = results(http, key, {"request_id": request_id})
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{request_id} never appeared in ocr-results")


def test_async_returns_at_once_and_result_appears(server, http, keys):
    server.configure(latency_base=0.5)
    r = http.post(
        "/v3/text",
        headers=keys,
        json={"src": data_uri(make_png(mark=1)), "async": True, "tags": ["job"]},
    )
    body = r.json()
    assert set(body) == {"request_id"}
    # processing (latency 0.5 s) happens after the answer: the row is still pending
    assert results(http, server.app_key, {"request_id": body["request_id"]}) == []
    pending = results(
        http, server.app_key, {"request_id": body["request_id"], "include_null_results": "true"}
    )
    assert pending[0]["result"] is None
    item = wait_for(http, server.app_key, body["request_id"])
    assert item["image_id"] == body["request_id"]
    assert item["endpoint"] == "/v3/text"
    assert item["result"]["text"] == echo_text(make_png(mark=1))
    assert item["request_args"]["tags"] == ["job"] and "src" not in item["request_args"]
    assert item["detections"]["is_printed"] is True and item["duration"] > 0
    assert item["timestamp"].endswith("Z")


def test_async_delay_and_include_null_results(http, keys):
    with LocalServer(async_delay=0.4) as srv, httpx.Client(base_url=srv.url) as h:
        rid = submit(h, srv.credentials(), 1, **{"async": True})
        time.sleep(0.1)
        assert results(h, srv.app_key, {"request_id": rid}) == []
        pending = results(h, srv.app_key, {"request_id": rid, "include_null_results": "true"})
        assert pending[0]["image_id"] == rid and pending[0]["result"] is None
        assert wait_for(h, srv.app_key, rid)["result"]["request_id"] == rid


def test_tag_containment_and_request_id(server, http, keys):
    a = submit(http, keys, 1, tags=["t1", "t2"])
    b = submit(http, keys, 2, tags=["t1", "t2", "t3"])
    c = submit(http, keys, 3, tags=["t3"])
    both = results(http, server.app_key, [("tags", "t1"), ("tags", "t2")])
    assert [i["image_id"] for i in both] == [b, a]  # newest first
    assert [i["image_id"] for i in results(http, server.app_key, {"tags": "t3"})] == [c, b]
    assert results(http, server.app_key, [("tags", "t1"), ("tags", "nope")]) == []
    assert [i["image_id"] for i in results(http, server.app_key, {"request_id": a})] == [a]


def test_paging_and_order(server, http, keys):
    ids = [submit(http, keys, i, tags=["page"]) for i in range(5)]
    seen = []
    for page in (1, 2, 3):
        got = results(http, server.app_key, {"tags": "page", "per_page": 2, "page": page})
        assert len(got) == (2 if page < 3 else 1)
        seen += [i["image_id"] for i in got]
    assert seen == ids[::-1]
    server.configure(results_order="oldest")
    oldest = results(http, server.app_key, {"tags": "page", "per_page": 100})
    assert [i["image_id"] for i in oldest] == ids
    bad = http.get("/v3/ocr-results", headers=keys, params={"per_page": "x"}).json()
    assert bad["error_info"]["id"] == "opts_number_required"
    bad = http.get("/v3/ocr-results", headers=keys, params={"page": 0}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"


def test_dates_text_and_boolean_filters(server, http, keys):
    rid = submit(http, keys, 4, tags=["d"])
    now = time.time()
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 60)) + "Z"
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 60)) + "Z"
    assert results(http, server.app_key, {"from_date": iso, "to_date": later})[0]["image_id"] == rid
    assert results(http, server.app_key, {"from_date": later}) == []
    offset = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 3600 - 60)) + "+01:00"
    raw = http.get(f"/v3/ocr-results?from_date={offset}", headers={"app_key": server.app_key})
    assert raw.json()["ocr_results"][0]["image_id"] == rid  # "+" decoded as a space
    assert results(http, server.app_key, {"to_date": iso}) == []
    sha = echo_text(make_png(mark=4)).split("sha:")[1]
    assert results(http, server.app_key, {"text": sha})[0]["image_id"] == rid
    assert results(http, server.app_key, {"text": "absent"}) == []
    for true in ("true", "True", "1"):
        assert results(http, server.app_key, {"is_printed": true})
        assert results(http, server.app_key, {"is_handwritten": true}) == []
    for false in ("false", "False", "0"):
        assert results(http, server.app_key, {"contains_table": false})
        assert results(http, server.app_key, {"is_printed": false}) == []
    bad = http.get("/v3/ocr-results", headers=keys, params={"is_printed": "maybe"}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"
    bad = http.get("/v3/ocr-results", headers=keys, params={"from_date": "yesterday"}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"
    assert results(http, server.app_key, {"app_id": server.app_id})
    assert results(http, server.app_key, {"app_id": "another-app"}) == []


def test_improve_mathpix_false_stores_nothing(server, http, keys):
    rid = submit(http, keys, 5, tags=["private"], metadata={"improve_mathpix": False})
    arid = submit(
        http, keys, 6, tags=["private"], metadata={"improve_mathpix": False}, **{"async": True}
    )
    time.sleep(0.2)
    assert results(http, server.app_key, {"tags": "private", "include_null_results": "1"}) == []
    assert results(http, server.app_key, {"request_id": rid}) == []
    assert results(http, server.app_key, {"request_id": arid}) == []


def test_regions_keep_separate_results(server, keys):
    with (
        httpx.Client(base_url=server.urls["global"]) as g,
        httpx.Client(base_url=server.urls["eu"]) as eu,
    ):
        gid = submit(g, keys, 7, tags=["where"])
        eid = submit(eu, keys, 8, tags=["where"])
        assert [i["image_id"] for i in results(g, server.app_key, {"tags": "where"})] == [gid]
        assert [i["image_id"] for i in results(eu, server.app_key, {"tags": "where"})] == [eid]
    assert {r.region for r in server.log if r.endpoint == "/v3/text"} == {"global", "eu"}


def test_failed_requests_are_listed_with_their_error(server, http, keys):
    r = http.post(
        "/v3/text", headers=keys, json={"src": data_uri(make_png(blank=True)), "async": True}
    )
    item = wait_for(http, server.app_key, r.json()["request_id"])
    assert item["result"]["error_info"]["id"] == "image_no_content"
