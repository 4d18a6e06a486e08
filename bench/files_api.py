"""Files API bench: a 200-PDF archive through one Files API job vs one v3/pdf call per document.

All paths run in one process against one ``LocalServer`` with a latency model (seconds per
page under a concurrency cap, and a pace per document state), measured in the same run:

* floor: the least wall time the cap and latency model allow: pages * latency / cap;
* files job: ``files_job`` of N ``s3://`` items (an emulated bucket) + ``files_wait_job`` +
  one ``files_download`` each;
* files uploads: ``files_upload`` per document (concurrent, async) + ``files_wait_job``;
* v3/pdf: ``AsyncMathpix.pdf()`` per document, ``--concurrency`` at a time (the fair peer:
  the client's own submit/poll/download flow, run concurrently rather than one by one).

Reported: wall time, ratio to the floor, and HTTP requests per document (from the server's
log). Run: ``python bench/files_api.py [--docs 200] [--pages 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import column, machine, table, write
from PIL import Image

from mathpix_nb import AsyncMathpix, Mathpix
from mathpix_nb.server import LocalServer


def make_pdf(pages: int, mark: int) -> bytes:
    images = [Image.new("RGB", (300, 200), (255, 255 - mark % 200, 255)) for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def requests_by_endpoint(srv: LocalServer, since: int) -> collections.Counter[str]:
    return collections.Counter(
        f"{r.method} {r.endpoint}"
        for r in srv.log[since:]
        if r.endpoint.startswith(("/v3/", "/files/"))
    )


async def run_v3(srv: LocalServer, paths: list[Path], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    async with AsyncMathpix(srv.app_id, srv.app_key, base_url=srv.url) as mpx:

        async def one(path: Path) -> None:
            async with gate:
                await mpx.pdf(path, poll_interval=0.1, timeout=600)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        return time.perf_counter() - t0


async def run_uploads(srv: LocalServer, paths: list[Path], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    async with AsyncMathpix(srv.app_id, srv.app_key, base_url=srv.url) as mpx:

        async def one(i: int, path: Path) -> None:
            async with gate:
                await mpx.files_upload(path, job_id="uploads", custom_id=f"doc-{i}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
        await mpx.files_wait_job("uploads", poll_interval=0.1)
        async for entry in mpx.files_list("uploads", page_size=1000):
            await mpx.files_download(entry.file_id)
        return time.perf_counter() - t0


def run_job(srv: LocalServer, names: list[str]) -> float:
    with Mathpix(srv.app_id, srv.app_key, base_url=srv.url) as mpx:
        ids = mpx.files_identities()["aws"]["external_id"]
        details = {"iam_role_arn": "arn:aws:iam::1:role/bench", "aws_external_id": ids}
        mpx.files_data_source_register("aws", "archive", "iam_role", details)
        t0 = time.perf_counter()
        items = [{"source_uri": f"s3://archive/{n}", "custom_id": n} for n in names]
        mpx.files_job(items, job_id="archive")
        mpx.files_wait_job("archive", poll_interval=0.1)
        for entry in mpx.files_list("archive", page_size=1000):
            mpx.files_download(entry.file_id)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per page")
    parser.add_argument("--cap", type=int, default=8, help="pages processed at once")
    parser.add_argument("--concurrency", type=int, default=16, help="v3/pdf calls at once")
    args = parser.parse_args()
    measured_on = machine()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "buckets"
        (root / "archive").mkdir(parents=True)
        paths, names = [], []
        for i in range(args.docs):
            name = f"doc-{i:04d}.pdf"
            (root / "archive" / name).write_bytes(make_pdf(args.pages, i))
            paths.append(root / "archive" / name)
            names.append(name)
        opts = dict(
            latency_base=args.latency,
            max_concurrency=args.cap,
            pdf_step_delay=0.05,
            bucket_root=root,
        )
        floor = args.docs * args.pages * args.latency / args.cap
        print(
            f"{args.docs} PDFs x {args.pages} pages, {args.latency * 1000:.0f} ms per page, "
            f"{args.cap} pages at once; floor {floor:.2f} s\n"
        )
        print(f"{'path':<34}{'wall s':>9}{'x floor':>9}{'requests/doc':>14}  requests")
        runs: list[tuple[str, Any]] = [
            ("Files API job (s3:// items)", lambda s: run_job(s, names)),
            ("Files API uploads", lambda s: asyncio.run(run_uploads(s, paths, args.concurrency))),
            (
                f"v3/pdf per document ({args.concurrency} at once)",
                lambda s: asyncio.run(run_v3(s, paths, args.concurrency)),
            ),
        ]
        for label, run in runs:
            with LocalServer(**opts) as srv:
                wall = run(srv)
                counts = requests_by_endpoint(srv, 0)
            total = sum(counts.values())
            detail = ", ".join(f"{n} {k}" for k, n in counts.most_common(4))
            print(
                f"{label:<34}{wall:>9.2f}{wall / floor:>9.2f}{total / args.docs:>14.2f}  {detail}"
            )
            rows.append(
                {
                    "path": label,
                    "wall": wall,
                    "x_floor": wall / floor,
                    "per_doc": total / args.docs,
                    "requests": detail,
                }
            )
    write(
        "files_api",
        args=args,
        setup=(
            f"{args.docs} PDFs x {args.pages} pages, {args.latency * 1000:.0f} ms per page, "
            f"{args.cap} pages at once, pdf_step_delay 0.05 s; floor {floor:.2f} s"
        ),
        tables=[
            table(
                "An archive through one job vs one v3/pdf call per document",
                [
                    column("path", "path"),
                    column("wall", "wall s", ".2f"),
                    column("x_floor", f"× floor ({floor:.2f} s)", ".2f"),
                    column("per_doc", "requests / doc", ".2f"),
                    column("requests", "requests"),
                ],
                rows,
            )
        ],
        machine_info=measured_on,
    )


if __name__ == "__main__":
    main()
