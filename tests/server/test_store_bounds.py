"""Bounded state (request log, OCR results, inbox: oldest out first) and the indexed
ocr-results listing, checked against a brute-force filter of the same rows."""

from __future__ import annotations

import random
import time

import httpx

from mathpix_nb.server import LocalServer
from mathpix_nb.server._store import ResultStore, StoredResult

from .conftest import data_uri, make_png


def post(http: httpx.Client, keys: dict[str, str], mark: int, **options) -> str:
    body = http.post(
        "/v3/text", headers=keys, json={"src": data_uri(make_png(mark=mark)), **options}
    ).json()
    return str(body["request_id"])


def listing(http: httpx.Client, key: str, **params) -> list[str]:
    r = http.get("/v3/ocr-results", headers={"app_key": key}, params=params)
    assert r.status_code == 200, r.text
    return [item["image_id"] for item in r.json()["ocr_results"]]


def test_request_log_keeps_the_last_records():
    with LocalServer(max_log_records=5) as srv, httpx.Client(base_url=srv.url) as http:
        ids = [post(http, srv.credentials(), mark) for mark in range(8)]
        assert [r.request_id for r in srv.log] == ids[-5:]
        stats = srv.stats()
        assert stats["log_records"] == 5 and stats["log_dropped"] == 3
        srv.configure(max_log_records=2)
        assert [r.request_id for r in srv.log] == ids[-2:]


def test_result_store_evicts_oldest_first():
    with LocalServer(max_stored_results=3) as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        ids = [post(http, keys, mark, tags=["run"]) for mark in range(5)]
        assert listing(http, srv.app_key, tags="run") == ids[:1:-1]  # newest first, last 3
        assert listing(http, srv.app_key, request_id=ids[0]) == []  # evicted
        assert listing(http, srv.app_key, request_id=ids[4]) == [ids[4]]
        assert srv.stats()["results_stored"] == 3 and srv.stats()["results_evicted"] == 2
        srv.configure(max_stored_results=1)
        assert listing(http, srv.app_key) == [ids[4]]


def test_inbox_keeps_the_last_messages():
    with LocalServer(max_inbox_messages=2) as srv, httpx.Client() as http:
        for n in range(4):
            http.post(srv.inbox_url("hook"), json={"n": n})
        assert [m["json"]["n"] for m in srv.inbox("hook")] == [2, 3]


def test_listing_filters_and_paging_over_http():
    with LocalServer(results_order="oldest") as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        tagged = {}
        for mark in range(12):
            tags = ["all", f"mod{mark % 3}"] + (["even"] if mark % 2 == 0 else [])
            tagged[post(http, keys, mark, tags=tags)] = set(tags)
            if mark == 5:
                time.sleep(0.01)
                middle = time.time()
                time.sleep(0.01)
        ids = list(tagged)
        want = [i for i in ids if {"mod0", "even"} <= tagged[i]]
        assert listing(http, srv.app_key, tags=["mod0", "even"]) == want  # containment
        assert listing(http, srv.app_key, tags="all", per_page=5, page=2) == ids[5:10]
        assert listing(http, srv.app_key, tags="all", per_page=5, page=3) == ids[10:]
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f"{middle % 1:.6f}"[1:]
        assert listing(http, srv.app_key, tags="even", from_date=since + "Z") == [
            i for i in ids[6:] if "even" in tagged[i]
        ]
        assert listing(http, srv.app_key, tags="nope") == []
        assert listing(http, srv.app_key, app_id=srv.app_id, per_page=3) == ids[:3]
        assert listing(http, srv.app_key, app_id="other") == []


def test_index_matches_a_brute_force_filter():
    rng = random.Random(7)
    store = ResultStore(limit=300)
    rows: list[StoredResult] = []
    for n in range(500):
        row = StoredResult(
            image_id=f"r{n}",
            endpoint="/v3/text",
            created=1000.0 + n // 3,  # ties: several rows share a timestamp
            app_id=rng.choice(["a", "b"]),
            request_args={},
            tags=tuple(rng.sample(["x", "y", "z", "w"], rng.randint(0, 3))),
            pdf_id=rng.choice([None, "p1", "p2"]),
        )
        store.add(row)
        rows.append(row)
    alive = rows[-300:]  # the oldest 200 were evicted
    assert len(store) == 300 and store.evicted == 200
    for _ in range(400):
        tags = frozenset(rng.sample(["x", "y", "z", "w"], rng.randint(0, 2)))
        app = rng.choice([None, "a", "b"])
        pdf = rng.choice([None, None, "p1"])
        lo = rng.choice([float("-inf"), 1100.0, 1120.5])
        hi = rng.choice([float("inf"), 1150.0])
        newest = rng.random() < 0.5
        offset, limit = rng.randint(0, 20), rng.randint(1, 30)
        keep_odd = rng.random() < 0.3
        expected = [
            r
            for r in (reversed(alive) if newest else alive)
            if tags <= set(r.tags)
            and (app is None or r.app_id == app)
            and (pdf is None or r.pdf_id == pdf)
            and lo <= r.created < hi
            and (not keep_odd or int(r.image_id[1:]) % 2 == 1)
        ][offset : offset + limit]
        got = store.query(
            tags=tags,
            app_id=app,
            pdf_id=pdf,
            lo=lo,
            hi=hi,
            newest_first=newest,
            keep=(lambda r: int(r.image_id[1:]) % 2 == 1) if keep_odd else None,
            offset=offset,
            limit=limit,
        )
        assert [r.image_id for r in got] == [r.image_id for r in expected]
