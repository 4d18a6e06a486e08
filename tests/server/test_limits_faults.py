"""Behaviour models: concurrency cap, rate limit, monthly quotas, injected faults."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from mathpix_nb.server import Faults, LocalServer

from .conftest import data_uri, echo_text, make_png


async def _fire(url: str, keys: dict, n: int, width: int = 16) -> list[httpx.Response]:
    """``n`` requests, ``width`` at a time (httpx's pool slows down with many more)."""
    gate = asyncio.Semaphore(width)
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=width)
    ) as client:

        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    "/v3/text", headers=keys, json={"src": data_uri(make_png(mark=i))}
                )

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_concurrency_cap_queues_requests():
    with LocalServer(max_concurrency=2, latency_base=0.1) as srv:
        responses = asyncio.run(_fire(srv.url, srv.credentials(), 8))
        assert all(r.status_code == 200 and "text" in r.json() for r in responses)
        assert srv.stats()["peak_in_flight"] == 2
        assert srv.stats()["in_flight"] == 0
        srv.configure(max_concurrency=None)
        asyncio.run(_fire(srv.url, srv.credentials(), 8))
        assert srv.stats()["peak_in_flight"] > 2


@pytest.mark.anyio
async def test_bulk_300_requests_with_cap_and_latency():
    with LocalServer(max_concurrency=8, latency_base=0.005, latency_per_kb=0.001) as srv:
        responses = await _fire(srv.url, srv.credentials(), 300)
        texts = [r.json()["text"] for r in responses]
        assert texts == [echo_text(make_png(mark=i)) for i in range(300)]
        assert len([r for r in srv.log if r.endpoint == "/v3/text"]) == 300
        assert srv.stats()["peak_in_flight"] <= 8


def test_rate_limit_per_minute(png):
    with LocalServer(rate_limit_per_minute=3) as srv, httpx.Client(base_url=srv.url) as http:
        keys, src = srv.credentials(), {"src": data_uri(png)}
        assert [http.post("/v3/text", headers=keys, json=src).status_code for _ in range(3)] == [
            200
        ] * 3
        r = http.post("/v3/text", headers=keys, json=src)
        assert r.status_code == 429
        assert r.json()["error_info"] == {
            "id": "http_max_requests",
            "message": "Too many requests",
            "limit_name": "requests_per_minute",
            "limit_value": 3,
            "count": 4,
        }
        assert "retry-after" not in r.headers
        assert http.get("/v3/ocr-results", headers=keys).status_code == 200  # not metered
        srv.configure(retry_after_header=True)
        r = http.post("/v3/text", headers=keys, json=src)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert srv.log[-1].error_id == "http_max_requests"
        srv.reset_limits()
        assert http.post("/v3/text", headers=keys, json=src).status_code == 200


def test_monthly_quotas(png):
    from .test_pdf_batch import make_pdf

    with (
        LocalServer(monthly_quota=2, monthly_page_quota=2) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        keys, src = srv.credentials(), {"src": data_uri(png)}
        http.post("/v3/text", headers=keys, json=src)
        r = http.post(
            "/v3/batch", headers=keys, json={"urls": {"a": data_uri(png), "b": data_uri(png)}}
        )
        assert r.status_code == 429 and r.json()["error_info"]["count"] == 3
        assert http.post("/v3/text", headers=keys, json=src).status_code == 200
        r = http.post("/v3/text", headers=keys, json=src)
        assert r.status_code == 429
        info = r.json()["error_info"]
        assert (info["id"], info["limit_name"], info["limit_value"], info["count"]) == (
            "http_max_requests",
            "image_monthly_limit",
            2,
            3,
        )
        for _ in range(2):
            pdf_id = http.post(
                "/v3/pdf", headers=keys, files={"file": ("d.pdf", make_pdf(1), "application/pdf")}
            ).json()["pdf_id"]
            from .test_pdf_batch import poll

            assert poll(http, keys, pdf_id)[-1]["status"] == "completed"
        r = http.post(
            "/v3/pdf", headers=keys, files={"file": ("d.pdf", make_pdf(1), "application/pdf")}
        )
        assert r.status_code == 429
        assert r.json()["error_info"]["limit_name"] == "page_monthly_limit"


def test_dropped_connection_is_seen_as_protocol_error(png):
    with LocalServer(faults=Faults(sequence=("drop",))) as srv:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(srv.url + "/v3/text", headers=srv.credentials(), json={"src": data_uri(png)})
        record = srv.log[-1]
        assert record.fault == "drop" and record.status_code is None
        ok = httpx.post(
            srv.url + "/v3/text", headers=srv.credentials(), json={"src": data_uri(png)}
        )
        assert ok.json()["text"] == echo_text(png)


def test_5xx_sys_exception_and_slow(png):
    faults = Faults(
        sequence=("http_5xx", "sys_exception", "slow"), slow_seconds=1.0, status_5xx=502
    )
    with LocalServer(faults=faults) as srv, httpx.Client(base_url=srv.url) as http:
        keys, src = srv.credentials(), {"src": data_uri(png)}
        r = http.post("/v3/text", headers=keys, json=src)
        assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
        r = http.post("/v3/text", headers=keys, json=src)
        assert r.status_code == 200 and r.json()["error_info"]["id"] == "sys_exception"
        assert r.json()["request_id"]
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v3/text", headers=keys, json=src, timeout=0.2)
        assert http.post("/v3/text", headers=keys, json=src).json()["text"] == echo_text(png)
        time.sleep(1.0)  # the slow request is logged once the server finishes it
        faults = [r.fault for r in sorted(srv.log, key=lambda r: r.timestamp)]
        assert faults == ["http_5xx", "sys_exception", "slow", None]


def _fault_pattern(seed: int) -> list[str | None]:
    with LocalServer(faults=Faults(http_5xx=0.3, sys_exception=0.2, seed=seed)) as srv:
        with httpx.Client(base_url=srv.url) as http:
            for i in range(20):
                http.post(
                    "/v3/text",
                    headers=srv.credentials(),
                    json={"src": data_uri(make_png(mark=i % 3))},
                )
            for i in range(20):  # multipart: a new random boundary every time
                http.post(
                    "/v3/text",
                    headers=srv.credentials(),
                    files={"file": ("a.png", make_png(mark=i % 3), "image/png")},
                )
        return [r.fault for r in srv.log]


def test_faults_are_deterministic_for_a_seed():
    first, again, other = _fault_pattern(7), _fault_pattern(7), _fault_pattern(8)
    assert first == again
    assert first != other
    assert {"http_5xx", "sys_exception", None} <= set(first)


def test_fault_endpoint_filter(png):
    with LocalServer(faults=Faults(http_5xx=1.0, endpoints=("/v3/text",))) as srv:
        keys = srv.credentials()
        assert httpx.post(srv.url + "/v3/text", headers=keys, json={}).status_code == 503
        assert httpx.get(srv.url + "/v3/ocr-results", headers=keys).status_code == 200


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="sum"):
        Faults(http_5xx=0.7, drop=0.5)
    with pytest.raises(ValueError, match="boom"):
        Faults(sequence=("boom",))
    with pytest.raises(TypeError, match="latency_bse"):
        LocalServer(latency_bse=1)
    with pytest.raises(ValueError, match="expired_token_mode"):
        LocalServer(expired_token_mode="403")
    with pytest.raises(ValueError, match="engine"):
        LocalServer(engine="tesseract")


def test_latency_model_grows_with_image_size():
    small, big = make_png(32, 32), make_png(900, 900, mark=5)
    with (
        LocalServer(latency_base=0.05, latency_per_kb=0.02) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        keys = srv.credentials()
        for data in (small, big):
            http.post("/v3/text", headers=keys, json={"src": data_uri(data), "tags": ["lat"]})
        items = http.get("/v3/ocr-results", headers=keys, params={"tags": "lat"}).json()
        by_width = {i["result"]["image_width"]: i["duration"] for i in items["ocr_results"]}
        # the server's own record of each job: at least base + per-KB of the image received
        assert by_width[32] >= 0.05 + 0.02 * len(small) / 1024 - 0.001
        assert by_width[900] >= 0.05 + 0.02 * len(big) / 1024 - 0.001
        assert len(big) > 10 * len(small)
