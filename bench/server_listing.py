"""Listing bench: what one ``v3/ocr-results`` poll costs as the local server's store grows.

A bulk run polls ``GET v3/ocr-results?tags=<batch tag>`` while results pile up. The store
is filled with N results (tags of 1,000-row batches, like the bulk engine's, plus one live
batch of 100), then each query below is timed over real loopback HTTP (median of many
polls), at N = 1k, 10k and 100k:

* ``live tag``: ``tags=<live batch>&per_page=100`` (the bulk poller's query);
* ``tag + from_date``: a batch tag with a ``from_date`` near its end;
* ``request_id``: one result;
* ``newest page``: no filter, ``per_page=100``.

Beside it, the peer: the listing as it was before the index (filter the whole store, sort,
slice; reimplemented here over the same rows), timed in-process for the live-tag query.
"Flat" means the 100k/1k ratio of the HTTP poll stays near 1 while the peer grows ~100x.

The store is filled directly (before the server starts), not over HTTP: a 100k-row fill
over HTTP would take minutes and measure uploads, not listings.

Run: ``python bench/server_listing.py`` (``--sizes 1000 100000`` to choose N).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from _results import column, machine, table, write

from mathpix_nb.server import LocalServer
from mathpix_nb.server._store import StoredResult, iso

LIVE = "batch-live"


def _row(n: int, created: float, tag: str) -> StoredResult:
    rid = f"2026_01_01_{n:020x}g"
    return StoredResult(
        image_id=rid,
        endpoint="/v3/text",
        created=created,
        app_id="local-app",
        request_args={"tags": [tag, "run"], "formats": ["text"]},
        tags=(tag, "run"),
        result={"request_id": rid, "text": f"echo row {n}", "confidence": 1.0},
        detections={"is_printed": True, "is_handwritten": False},
        timestamp=created,
        duration=0.01,
        visible_at=0.0,
    )


def fill(server: LocalServer, n: int) -> list[StoredResult]:
    store = server._state.stores[server.regions[0]].results  # before start: no loop yet
    store.resize(max(n, store.limit))
    start = time.time() - n * 0.001
    rows = []
    for i in range(n):
        tag = LIVE if i >= n - 100 else f"batch-{i // 1000}"
        row = _row(i, start + i * 0.001, tag)
        store.add(row)
        rows.append(row)
    return rows


def scan_listing(rows: list[StoredResult], tags: set[str], per_page: int) -> list[Any]:
    """The pre-index listing: filter every row, sort them all, slice one page."""
    found = [(r, True) for r in rows if r.result is not None and tags <= set(r.tags)]
    order = sorted(range(len(found)), key=lambda i: (found[i][0].created, i), reverse=True)
    return [found[i][0].item() for i in order[:per_page]]


def timed(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run(n: int, repeat: int) -> dict[str, float]:
    server = LocalServer(max_stored_results=max(n, 1000), max_log_records=1000)
    rows = fill(server, n)
    batch = f"batch-{max(0, (n - 101) // 1000)}"
    near_end = iso(rows[-150].created)
    with server, httpx.Client(base_url=server.url, headers={"app_key": server.app_key}) as http:

        def get(**params: Any) -> None:
            r = http.get("/v3/ocr-results", params=params)
            assert r.status_code == 200 and r.json()["ocr_results"], r.text

        for _ in range(5):  # warm up the connection and code paths
            get(tags=LIVE)
        out = {
            "live tag": timed(lambda: get(tags=LIVE, per_page=100), repeat),
            "tag + from_date": timed(lambda: get(tags=batch, from_date=near_end), repeat),
            "request_id": timed(lambda: get(request_id=rows[n // 2].image_id), repeat),
            "newest page": timed(lambda: get(per_page=100), repeat),
        }
    out["peer: scan live tag"] = timed(
        lambda: scan_listing(rows, {LIVE}, 100), max(3, repeat // 10)
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=60, help="polls per query (median)")
    args = parser.parse_args()
    measured_on = machine()
    results = {n: run(n, args.repeat) for n in args.sizes}
    names = list(next(iter(results.values())))
    first, last = args.sizes[0], args.sizes[-1]
    print(f"ocr-results poll cost (median ms over {args.repeat} polls, loopback HTTP)\n")
    header = f"{'query':<22}" + "".join(f"{f'N={n:,}':>12}" for n in args.sizes)
    print(header + f"{f'{last // first}x rows':>14}")
    for name in names:
        cells = "".join(f"{results[n][name] * 1000:>12.2f}" for n in args.sizes)
        ratio = results[last][name] / results[first][name]
        print(f"{name:<22}{cells}{ratio:>13.2f}x")
    rows = [
        {
            "query": name,
            **{f"n{n}": results[n][name] * 1000 for n in args.sizes},
            "ratio": results[last][name] / results[first][name],
        }
        for name in names
    ]
    write(
        "server_listing",
        args=args,
        setup=f"median ms over {args.repeat} polls of `GET v3/ocr-results`, loopback HTTP",
        tables=[
            table(
                "Poll cost by store size (median ms)",
                [column("query", "query")]
                + [column(f"n{n}", f"N={n:,}", ".2f") for n in args.sizes]
                + [column("ratio", f"{last // first}x rows", ".2f")],
                rows,
            )
        ],
        data={str(n): {k: v * 1000 for k, v in r.items()} for n, r in results.items()},
        machine_info=measured_on,
    )


if __name__ == "__main__":
    main()
