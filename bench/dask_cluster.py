"""ocr_dask on 1, 2 and 4 dask.distributed worker processes at one fixed API cap.

    python bench/dask_cluster.py                 # N=320 images, cap 8, 0.2 s per image
    python bench/dask_cluster.py --images 160 --workers 1 2

The local server (in this process; the workers are other processes) processes at most
``--cap`` images at once, each taking ``--latency`` seconds, so no client can finish N images
faster than the floor N * latency / cap. Every configuration shares one cluster-wide budget
(``cluster_concurrency=cap``): the cap, not the number of workers, must be the limit, so
wall/floor should stay near 1.0 whatever the worker count. Each row uses a fresh server and
fresh images (nothing cached); the cluster's start-up is not timed. Uploads are async
v3/text jobs: the server accepts each at once and processes it under the cap, so "uploads in
flight" (peak overlap of POSTs at the server, bounded by the shared semaphore) is small.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import distributed
import pandas as pd
from _results import column, machine, table, write
from PIL import Image

from mathpix_nb.bulk import ocr_dask
from mathpix_nb.server import LocalServer


def write_images(folder: Path, n: int, start: int) -> list[str]:
    paths = []
    for i in range(start, start + n):
        im = Image.new("L", (32, 32), 255)
        for k, byte in enumerate(i.to_bytes(4, "big")):
            im.putpixel((k, 0), byte)
        im.putpixel((31, 31), 0)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        path = folder / f"{i}.png"
        path.write_bytes(buf.getvalue())
        paths.append(str(path))
    return paths


def max_overlap(records: list[Any]) -> int:
    edges = sorted(
        [(r.timestamp, 1) for r in records] + [(r.timestamp + r.duration, -1) for r in records]
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def run(workers: int, paths: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with LocalServer(engine="echo", max_concurrency=args.cap, latency_base=args.latency) as srv:
        env = {"MATHPIX_APP_ID": srv.app_id, "MATHPIX_APP_KEY": srv.app_key, "MATHPIX_URL": srv.url}
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=2,
                processes=True,
                dashboard_address=None,
                env=env,
                silence_logs=40,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.run(lambda: __import__("mathpix_nb.bulk._dask"))  # imports are not timed
            ddf = dd.from_pandas(pd.DataFrame({"p": paths}), npartitions=args.partitions)
            out = ocr_dask(
                ddf,
                "p",
                journal=False,
                concurrency=args.cap,
                cluster_concurrency=args.cap,
                poll_interval=0.1,
                progress=False,
            )
            t0 = time.monotonic()
            result = client.compute(out).result()
            wall = time.monotonic() - t0
        posts = [r for r in srv.log if r.endpoint == "/v3/text"]
        requests = len(srv.log)
    assert result["ocr_error"].isna().all(), result["ocr_error"].dropna().head()
    floor = len(paths) * args.latency / args.cap
    return {
        "workers": workers,
        "images": len(paths),
        "wall": wall,
        "floor": floor,
        "ratio": wall / floor,
        "uploads": len(posts),
        "req_per_image": requests / len(paths),
        "peak": max_overlap(posts),
        "refused": sum(1 for r in posts if r.status_code == 429),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--cap", type=int, default=8, help="server concurrency cap")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per image")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    measured_on = machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, workers in enumerate(args.workers):
            folder = Path(tmp) / str(workers)
            folder.mkdir()
            paths = write_images(folder, args.images, start=i * args.images)
            rows.append(run(workers, paths, args))
    print(
        f"cap {args.cap} concurrent, {args.latency * 1000:.0f} ms per image, "
        f"{args.partitions} partitions, 2 threads per worker, {os.cpu_count()} cores"
    )
    print(
        "| workers | images | wall | floor | × floor | uploads | requests/image | uploads in flight (peak) | 429 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['images']} | {r['wall']:.2f} s | {r['floor']:.2f} s | "
            f"**{r['ratio']:.2f}** | {r['uploads']} | {r['req_per_image']:.2f} | {r['peak']} | "
            f"{r['refused']} |"
        )
    write(
        "dask_cluster",
        args=args,
        setup=(
            f"cap {args.cap} concurrent, {args.latency * 1000:.0f} ms per image, "
            f"{args.partitions} partitions, 2 threads per worker, one cluster-wide budget"
        ),
        tables=[
            table(
                "ocr_dask by worker count at one API cap",
                [
                    column("workers", "workers", "d"),
                    column("images", "images", "d"),
                    column("wall", "wall s", ".2f"),
                    column("floor", "floor s", ".2f"),
                    column("ratio", "× floor", ".2f"),
                    column("uploads", "uploads", "d"),
                    column("req_per_image", "requests/image", ".2f"),
                    column("peak", "uploads in flight (peak)", "d"),
                    column("refused", "429", "d"),
                ],
                rows,
            )
        ],
        machine_info=measured_on,
    )


if __name__ == "__main__":
    main()
