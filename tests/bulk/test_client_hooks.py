"""Bulk is a plain user of the public client: the user's HTTP client, hooks and retry policy
apply to every bulk request; polling is incremental; bad rows and a dead server are per-row
errors or a fast stop, never a crash."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mathpix_nb import AsyncMathpix, Journal, Mathpix, RetryPolicy
from mathpix_nb.bulk import aocr_frame, ocr_frame
from mathpix_nb.server import Faults, LocalServer

FAST = {"poll_interval": 0.02, "progress": False, "journal": False}


def test_the_users_httpx_event_hooks_see_every_bulk_request(local_server, make_images) -> None:
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    client = Mathpix(
        local_server.app_id, local_server.app_key, base_url=local_server.url, http_client=http
    )
    before = len(local_server.log)
    out = ocr_frame(
        pd.DataFrame({"p": make_images(12)}), "p", client=client, dataset="event-hooks", **FAST
    )
    served = len(local_server.log) - before
    assert out["ocr_error"].isna().all()
    assert len(seen) == served == out.attrs["mathpix_summary"]["requests"]
    assert seen.count("/v3/text") == 12 and "/v3/ocr-results" in seen
    assert not http.is_closed  # the user's client is left open
    http.close()


def test_a_mock_transport_client_completes_a_run(make_images) -> None:
    """No server at all: the user's transport answers (the API, not our HTTP layer)."""
    jobs: dict[str, dict[str, object]] = {}

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/text":
            rid = f"r{len(jobs)}"
            jobs[rid] = {"text": f"mock {rid}", "request_id": rid, "confidence": 1}
            return httpx.Response(200, json={"request_id": rid})
        items = [{"image_id": rid, "result": body} for rid, body in jobs.items()]
        return httpx.Response(200, json={"ocr_results": items})

    http = httpx.AsyncClient(transport=httpx.MockTransport(api))
    client = AsyncMathpix("id", "key", base_url="https://mock.invalid", http_client=http)

    async def run() -> pd.DataFrame:
        try:
            return await aocr_frame(pd.DataFrame({"p": make_images(5)}), "p", client=client, **FAST)
        finally:
            await http.aclose()

    import anyio

    out = anyio.run(run)
    assert out["ocr_error"].isna().all(), out["ocr_error"].tolist()
    assert sorted(out["ocr_text"]) == [f"mock r{i}" for i in range(5)]


def test_retried_counts_real_retries_only(make_images) -> None:
    faults = Faults(sequence=("http_5xx",), endpoints=("/v3/text",))
    with LocalServer(engine="echo", faults=faults) as server:
        client = Mathpix(
            server.app_id,
            server.app_key,
            base_url=server.url,
            retry=RetryPolicy(base_delay=0.01, max_delay=0.02),
        )
        out = ocr_frame(pd.DataFrame({"p": make_images(6)}), "p", client=client, **FAST)
        fivexx = sum(1 for r in server.log if r.fault == "http_5xx")
    assert out["ocr_error"].isna().all()
    assert fivexx == 1 and out.attrs["mathpix_summary"]["retried"] == 1


def test_polling_does_not_download_finished_results_again(make_images) -> None:
    """Poll bytes stay close to the bytes of the results themselves (10.6x before).

    Counted by the user's httpx response hook (the server's request log holds no response
    sizes). About 1.2x here on an idle machine; the bound leaves room for a loaded one,
    where completions come back out of order."""
    polled = [0]
    results: dict[str, int] = {}

    def on_response(response: httpx.Response) -> None:
        if response.url.path == "/v3/ocr-results":
            response.read()
            polled[0] += len(response.content)
            for item in response.json()["ocr_results"]:
                results[item["image_id"]] = len(json.dumps(item, separators=(",", ":")))

    http = httpx.Client(event_hooks={"response": [on_response]})
    paths = make_images(1000)
    with LocalServer(engine="echo", async_delay=0.3) as server:
        client = Mathpix(server.app_id, server.app_key, base_url=server.url, http_client=http)
        out = ocr_frame(
            pd.DataFrame({"p": paths}),
            "p",
            client=client,
            concurrency=16,
            poll_interval=0.1,
            progress=False,
            journal=False,
        )
        polls = sum(1 for r in server.log if r.endpoint == "/v3/ocr-results")
    http.close()
    assert out["ocr_error"].isna().all()
    assert len(results) == 1000 and polls > 5
    ratio = polled[0] / sum(results.values())
    assert ratio <= 1.5, (ratio, polls)


def _png(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_every_bad_array_or_image_is_a_row_error_and_the_rest_complete(
    local_server, make_images
) -> None:
    good = make_images(3)
    bad = [
        np.zeros((0, 0), dtype=np.uint8),
        np.array([[object(), object()]], dtype=object),
        np.array([["a", "b"]]),
        Image.new("L", (0, 0)),
        np.zeros((4, 4, 7), dtype=np.uint8),
    ]
    cells: list[object] = [good[0], *bad[:3], good[1], *bad[3:], good[2]]
    client = Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url)
    out = ocr_frame(pd.DataFrame({"p": cells}), "p", client=client, **FAST)
    errors = out["ocr_error"].tolist()
    assert [e is None for e in errors] == [isinstance(c, str) for c in cells]
    for cell, error in zip(cells, errors, strict=True):
        if not isinstance(cell, str):
            assert error.startswith(("image_unreadable", "internal_error")), error
    assert out["ocr_text"].dropna().str.startswith("echo").sum() == 3


def test_identical_bad_contents_name_each_rows_own_file(local_server, tmp_path) -> None:
    a = _png(tmp_path / "first.png", b"this is not an image")
    b = _png(tmp_path / "second.png", b"this is not an image")
    client = Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url)
    out = ocr_frame(pd.DataFrame({"p": [a, b]}), "p", client=client, **FAST)
    first, second = (e.split(" (same content as")[0] for e in out["ocr_error"])
    assert "first.png" in first and "second.png" not in first, first
    assert "second.png" in second and "first.png" not in second, second


def test_a_dead_server_stops_the_run_fast_and_counts_nothing_sent(make_images) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts: list[object] = []
    client = Mathpix(
        "id",
        "key",
        base_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02),
        observers=[lambda e: attempts.append(e) if e.kind == "request" else None],
    )
    t0 = time.monotonic()
    out = ocr_frame(pd.DataFrame({"p": make_images(40)}), "p", client=client, concurrency=4, **FAST)
    elapsed = time.monotonic() - t0
    summary = out.attrs["mathpix_summary"]
    assert out["ocr_error"].notna().all()
    assert out["ocr_error"].str.contains("server_unreachable").sum() >= 30
    assert summary["submitted"] == 0 and summary["failed"] == 40
    assert len(attempts) < 40 and elapsed < 10


def test_journal_is_public(tmp_path) -> None:
    import mathpix_nb.bulk

    assert mathpix_nb.bulk.Journal is Journal
    with Journal(tmp_path / "j.sqlite3") as j:
        assert j.counts() == {} or sum(j.counts().values()) == 0


@pytest.mark.parametrize("ahead", [3600.0])
def test_clock_skew_in_the_journal_does_not_stretch_the_wait(
    local_server, make_images, tmp_path, ahead
) -> None:
    """``submitting`` rows written by a clock an hour ahead: no hour of polling."""
    paths = make_images(3)
    path = tmp_path / "skew.sqlite3"
    client = Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url)
    first = ocr_frame(pd.DataFrame({"p": paths}), "p", client=client, journal=path, progress=False)
    import sqlite3

    with sqlite3.connect(path) as db:  # as a crashed run on a fast clock leaves them
        db.execute(
            "UPDATE jobs SET state='submitting', request_id=NULL, row_tag='mnb-row-lost', "
            "updated_at=?",
            (time.time() + ahead,),
        )
    t0 = time.monotonic()
    again = ocr_frame(
        pd.DataFrame({"p": paths}),
        "p",
        client=client,
        journal=path,
        poll_interval=0.05,
        unknown_grace=1.0,
        timeout=20,
        progress=False,
    )
    assert time.monotonic() - t0 < 10
    assert again["ocr_error"].isna().all(), again["ocr_error"].tolist()
    assert list(again["ocr_text"]) == list(first["ocr_text"])
    assert again.attrs["mathpix_summary"]["elapsed"] < 10
