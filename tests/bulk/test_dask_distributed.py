"""ocr_dask on a real dask.distributed cluster of worker processes against the local server.

Each test starts a LocalCluster(processes=True): the workers are other processes, which get
their credentials from their own environment (``env=`` of the nanny), never from the graph.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mathpix_nb import ConfigurationError
from mathpix_nb.bulk import ocr_dask
from mathpix_nb.server import Faults, LocalServer

from .conftest import client_for
from .test_bulk import echo_sha

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402  (after the importorskip)


def _env(server: LocalServer) -> dict[str, str]:
    return {
        "MATHPIX_APP_ID": server.app_id,
        "MATHPIX_APP_KEY": server.app_key,
        "MATHPIX_URL": server.url,
    }


@pytest.fixture(autouse=True)
def _short_leases() -> Iterator[None]:
    # a dead worker's semaphore leases expire after this (default 30 s); workers inherit it
    with dask.config.set(
        {
            "distributed.scheduler.locks.lease-timeout": "3s",
            "distributed.scheduler.locks.lease-validation-interval": "0.5s",
        }
    ):
        yield


def _cluster(n: int, env: dict[str, str]) -> Any:
    return distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env=env,
        silence_logs=40,
    )


def _posts(server: LocalServer) -> list[Any]:
    return [r for r in server.log if r.endpoint == "/v3/text" and r.method == "POST"]


def _paid(server: LocalServer) -> Counter[str]:
    """Images the server accepted (and would bill), by content."""
    return Counter(r.image_sha256 for r in _posts(server) if r.ok and r.image_sha256)


def _max_overlap(records: list[Any]) -> int:
    edges = sorted(
        [(r.timestamp, 1) for r in records] + [(r.timestamp + r.duration, -1) for r in records],
        key=lambda e: (e[0], e[1]),
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def _check_rows(out: pd.DataFrame, paths: list[str]) -> None:
    assert list(out["p"]) == paths
    assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().head()
    assert [t.split("sha:")[1] for t in out["ocr_text"]] == [echo_sha(p) for p in paths]


@pytest.mark.timeout(120)
def test_killed_worker_partitions_are_retried_and_no_image_is_paid_twice(
    make_images, tmp_path: Path
) -> None:
    paths = make_images(80)
    ddf = dd.from_pandas(pd.DataFrame({"p": paths}), npartitions=4)
    with (
        LocalServer(engine="echo", max_concurrency=4, latency_base=0.2) as server,
        _cluster(2, _env(server)) as cluster,
        distributed.Client(cluster) as dclient,
    ):
        # journal=False: no worker keeps a cache, so only the tags can prevent double pay
        out = ocr_dask(
            ddf, "p", journal=False, poll_interval=0.05, cluster_concurrency=4, progress=False
        )
        future = dclient.compute(out)
        deadline = time.monotonic() + 60
        while len(_posts(server)) < 15:
            assert time.monotonic() < deadline, "the cluster never started sending"
            time.sleep(0.05)
        busy: list[str] = []
        while not busy:
            assert time.monotonic() < deadline, "no worker was running a partition"
            busy = [addr for addr, keys in dclient.processing().items() if keys]
        pids = dclient.run(os.getpid, workers=busy[:1])
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker dies mid-partition
        result = future.result(timeout=90)
        paid = _paid(server)
    _check_rows(result, paths)
    assert len(paid) == 80
    assert max(paid.values()) == 1, [sha for sha, n in paid.items() if n > 1]
    # how the re-run partition found what had landed (by row tag, or in the listing task
    # run again when its result was lost with the worker) depends on when the kill fell;
    # what a user sees is the above: every row, each image paid once


@pytest.mark.timeout(150)
def test_four_workers_keep_to_one_concurrency_cap_and_one_rate_limit(make_images) -> None:
    rate = 20  # per minute: 28 images need two windows, so an unshared budget would 429
    paths = make_images(28)
    ddf = dd.from_pandas(pd.DataFrame({"p": paths}), npartitions=4)
    with (
        LocalServer(
            engine="echo",
            max_concurrency=8,
            rate_limit_per_minute=rate,
            retry_after_header=True,
            latency_base=0.5,
            # each upload takes 0.5 s at the server, so uploads in flight overlap visibly
            faults=Faults(slow=1.0, slow_seconds=0.5, endpoints=("/v3/text",)),
        ) as server,
        _cluster(4, _env(server)) as cluster,
        distributed.Client(cluster) as dclient,
    ):
        out = ocr_dask(
            ddf,
            "p",
            journal=False,
            poll_interval=0.1,
            concurrency=8,  # 4 workers x 8 would be 32 at once without the shared lease
            cluster_concurrency=8,
            requests_per_minute=rate,
            progress=False,
        )
        t0 = time.monotonic()
        result = dclient.compute(out).result(timeout=130)
        wall = time.monotonic() - t0
        posts = _posts(server)
    _check_rows(result, paths)
    refused = [r for r in posts if r.status_code == 429]
    assert refused == []  # not one 429, let alone a storm
    assert len(posts) == 28
    assert _max_overlap(posts) <= 8
    starts = sorted(r.timestamp for r in posts)
    # the window: 20 in the first minute, the rest only after it
    assert all(b - a >= 60 for a, b in zip(starts, starts[rate:], strict=False))
    assert 60 <= wall < 120


@pytest.mark.timeout(120)
def test_typed_columns_round_trip_through_parquet_and_no_secret_in_the_graph(
    make_images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make_images(9)
    missing = [str(tmp_path / f"gone{i}.png") for i in range(3)]
    # the last partition fails entirely: all its text cells are null (ArrowInvalid before)
    pdf = pd.DataFrame({"p": paths + missing, "n": range(12)})
    ddf = dd.from_pandas(pdf, npartitions=4, sort=False)
    with (
        LocalServer(engine="echo") as server,
        _cluster(2, _env(server)) as cluster,
        distributed.Client(cluster),
    ):
        client = client_for(server)  # explicit keys on the client side
        out = ocr_dask(ddf, "p", client=client, journal=False, poll_interval=0.05)
        graph = pickle.dumps(dict(out.__dask_graph__()))
        assert server.app_key.encode() not in graph
        out.to_parquet(tmp_path / "ocr", write_index=False)
        shown = ""  # the client's bar, fed by the workers' events (they arrive asynchronously)
        deadline = time.monotonic() + 10
        while "12/12" not in shown and time.monotonic() < deadline:
            time.sleep(0.05)
            shown += capsys.readouterr().err
        assert "mathpix OCR (dask)" in shown and "12/12" in shown
        back = pd.read_parquet(tmp_path / "ocr")
        lazy_back = dd.read_parquet(tmp_path / "ocr").compute()
    back = back.sort_values("n").reset_index(drop=True)
    assert str(back["ocr_text"].dtype).startswith("str")
    assert str(back["ocr_confidence"].dtype) == "Float64"
    assert list(lazy_back.sort_values("n")["ocr_text"].isna()) == [False] * 9 + [True] * 3
    assert back["ocr_text"].iloc[:9].str.startswith("echo 4x4").all()
    assert back["ocr_error"].iloc[9:].str.startswith("file_not_found").all()
    assert back["ocr_confidence"].iloc[9:].isna().all()


@pytest.mark.timeout(90)
def test_a_worker_without_credentials_names_its_environment(make_images) -> None:
    paths = make_images(2)
    ddf = dd.from_pandas(pd.DataFrame({"p": paths}), npartitions=1)
    empty = {k: "" for k in ("MATHPIX_APP_ID", "MATHPIX_APP_KEY", "MATHPIX_URL")}
    with (
        LocalServer(engine="echo") as server,
        _cluster(1, empty) as cluster,
        distributed.Client(cluster),
    ):
        out = ocr_dask(ddf, "p", client=client_for(server), journal=False, progress=False)
        with pytest.raises(ConfigurationError) as info:
            out.compute()
    message = str(info.value)
    assert "worker" in message and "MATHPIX_APP_ID" in message
    assert server.app_key not in message


def test_rate_window_on_the_scheduler_is_a_sliding_minute() -> None:
    from types import SimpleNamespace

    from mathpix_nb.bulk._dask import _reserve_slot

    scheduler = SimpleNamespace()
    delays = [_reserve_slot("b", 3, 60.0, dask_scheduler=scheduler) for _ in range(7)]
    assert delays[:3] == [0.0, 0.0, 0.0]  # a full window's worth at once
    assert all(59.0 < d <= 60.0 for d in delays[3:6])  # then each waits for a slot to free
    assert 119.0 < delays[6] <= 120.0
    assert _reserve_slot("other", 3, 60.0, dask_scheduler=scheduler) == 0.0  # budgets by name


@pytest.mark.timeout(120)
def test_deleting_every_journal_then_rerunning_uploads_nothing(make_images, tmp_path: Path) -> None:
    """The workers' journals (on their own disks) are a cache: with all of them gone, one
    listing task reads the dataset back from v3/ocr-results, at one request per page."""
    import shutil

    paths = make_images(60)
    ddf = dd.from_pandas(pd.DataFrame({"p": paths}), npartitions=3)
    home = tmp_path / "home"
    with LocalServer(engine="echo") as server:
        env = dict(_env(server), MATHPIX_NB_HOME=str(home))
        with _cluster(2, env) as cluster, distributed.Client(cluster):
            first = ocr_dask(ddf, "p", poll_interval=0.05, progress=False).compute()
            assert len(_posts(server)) == 60
            assert list(home.glob("journal.sqlite3*"))  # the workers kept their journals
            shutil.rmtree(home)
            before = len(server.log)
            again = ocr_dask(ddf, "p", poll_interval=0.05, progress=False, per_page=25).compute()
            rerun = server.log[before:]
        # two datasets sharing images pay once: a new frame, half of it seen before
        more = make_images(60, start=30)
        ddf2 = dd.from_pandas(pd.DataFrame({"p": more}), npartitions=3)
        with _cluster(2, env) as cluster, distributed.Client(cluster):
            third = ocr_dask(ddf2, "p", journal=False, poll_interval=0.05, progress=False)
            third = third.compute()
        posts = _posts(server)
    _check_rows(first, paths)
    _check_rows(again, paths)
    _check_rows(third, more)
    assert list(again["ocr_request_id"]) == list(first["ocr_request_id"])
    assert not [r for r in rerun if r.endpoint == "/v3/text"]  # not one upload more
    reads = [r for r in rerun if r.endpoint == "/v3/ocr-results"]
    # one listing of 60 jobs at 25 a page (3 pages), once for all three partitions
    assert len(reads) <= 3, [r.tags for r in reads]
    assert len(posts) == 60 + 30  # the 30 shared images were not paid again
