"""A bulk run survives injected faults without losing a row or paying for an image twice."""

from __future__ import annotations

import threading
from collections import Counter

import pandas as pd
import pytest

from mathpix_nb.bulk import ocr_frame
from mathpix_nb.server import Faults, LocalServer

from .conftest import client_for
from .test_bulk import echo_sha


def accepted(server: LocalServer) -> Counter[str]:
    """Images the server actually processed (faulted requests never reach the engine)."""
    return Counter(
        r.image_sha256 for r in server.log if r.endpoint == "/v3/text" and r.image_sha256
    )


@pytest.mark.slow
def test_1000_rows_with_5xx_drops_429_bursts_and_slow_replies(make_images) -> None:
    paths = make_images(1000)
    faults = Faults(
        http_5xx=0.04, sys_exception=0.02, drop=0.04, slow=0.02, slow_seconds=0.3, seed=11
    )
    with LocalServer(engine="echo", faults=faults, rate_limit_per_minute=250) as server:
        # a 429 burst: the per-minute limit bites after 250 images and is lifted a little later
        stop = threading.Event()

        def lift_after_a_burst() -> None:
            while not stop.wait(0.1):
                if sum(r.status_code == 429 for r in server.log) >= 30:
                    break
            server.configure(rate_limit_per_minute=None)

        lifter = threading.Thread(target=lift_after_a_burst)
        lifter.start()
        try:
            out = ocr_frame(
                pd.DataFrame({"p": paths}),
                "p",
                client=client_for(server),
                concurrency=16,
                poll_interval=0.05,
                unknown_grace=0.5,
                progress=False,
            )
        finally:
            stop.set()
            lifter.join()
        log = server.log
        counts = accepted(server)
    assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().head().tolist()
    assert [t.split("sha:")[1] for t in out["ocr_text"]] == [echo_sha(p) for p in paths]
    faults_seen = Counter(r.fault for r in log if r.fault)
    assert {"http_5xx", "drop", "slow", "sys_exception"} <= set(faults_seen)
    assert any(r.status_code == 429 for r in log)
    # every image processed exactly once, although many requests failed and were retried
    assert len(counts) == 1000 and set(counts.values()) == {1}
    summary = out.attrs["mathpix_summary"]
    assert summary["retried"] > 0 and summary["failed"] == 0 and summary["done"] == 1000


def test_a_lost_reply_is_found_by_its_row_tag_not_resent(make_images) -> None:
    """The upload lands but the reply never comes back (client timeout): no resend."""
    import httpx

    from mathpix_nb import Mathpix

    paths = make_images(4)
    faults = Faults(sequence=("slow", None, None, None), slow_seconds=1.0, endpoints=("/v3/text",))
    with LocalServer(engine="echo", faults=faults) as server:
        client = Mathpix(
            server.app_id,
            server.app_key,
            base_url=server.url,
            timeout=httpx.Timeout(0.4, connect=2.0),
            max_retries=0,
        )
        out = ocr_frame(
            pd.DataFrame({"p": paths}),
            "p",
            client=client,
            concurrency=1,
            poll_interval=0.05,
            unknown_grace=5.0,
            progress=False,
        )
        counts = accepted(server)
        lookups = [
            r
            for r in server.log
            if r.endpoint == "/v3/ocr-results" and any(t.startswith("mnb-row-") for t in r.tags)
        ]
    assert out["ocr_error"].isna().all(), out["ocr_error"].tolist()
    assert len(counts) == 4 and set(counts.values()) == {1}
    assert lookups  # it asked by row tag before deciding
    assert out.attrs["mathpix_summary"]["recovered"] == 1


def test_a_dropped_upload_is_resent_after_the_lookup_finds_nothing(make_images) -> None:
    paths = make_images(3)
    faults = Faults(sequence=("drop",), endpoints=("/v3/text",))
    with LocalServer(engine="echo", faults=faults) as server:
        out = ocr_frame(
            pd.DataFrame({"p": paths}),
            "p",
            client=client_for(server),
            concurrency=1,
            poll_interval=0.05,
            unknown_grace=0.3,
            progress=False,
        )
        counts = accepted(server)
        dropped = [r for r in server.log if r.fault == "drop"]
    assert out["ocr_error"].isna().all()
    assert len(dropped) == 1 and set(counts.values()) == {1} and len(counts) == 3
    assert out.attrs["mathpix_summary"]["retried"] >= 1


def test_deadline_leaves_pending_rows_for_a_rerun(make_images) -> None:
    paths = make_images(5)
    with LocalServer(engine="echo", async_delay=4.0) as server:
        client = client_for(server)
        first = ocr_frame(
            pd.DataFrame({"p": paths}),
            "p",
            client=client,
            timeout=1.5,
            poll_interval=0.05,
            progress=False,
        )
        assert first["ocr_error"].str.startswith("poll_timeout").all()
        assert first["ocr_request_id"].notna().all()
        assert first.attrs["mathpix_summary"]["pending"] == 5
        second = ocr_frame(
            pd.DataFrame({"p": paths}), "p", client=client, poll_interval=0.05, progress=False
        )
        counts = accepted(server)
    assert second["ocr_error"].isna().all()
    assert (second["ocr_request_id"] == first["ocr_request_id"]).all()  # collected, not resent
    assert set(counts.values()) == {1}


def test_two_concurrent_runs_on_one_journal_send_each_image_once(make_images, tmp_path) -> None:
    """Two runs at once (e.g. Dask partitions in threads) over the same images."""
    paths = make_images(30)
    journal = tmp_path / "shared.sqlite3"
    results: dict[int, pd.DataFrame] = {}
    with LocalServer(engine="echo", async_delay=0.3) as server:
        client = client_for(server)

        def run(i: int) -> None:
            results[i] = ocr_frame(
                pd.DataFrame({"p": paths}),
                "p",
                client=client,
                journal=journal,
                poll_interval=0.05,
                progress=False,
            )

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = accepted(server)
    for out in results.values():
        assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().tolist()
        assert [t.split("sha:")[1] for t in out["ocr_text"]] == [echo_sha(p) for p in paths]
    assert len(counts) == 30 and set(counts.values()) == {1}
