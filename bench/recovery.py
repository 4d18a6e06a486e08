"""What a rerun costs when the journal is gone: the API as the journal of record.

    python bench/recovery.py                  # N=1000 images
    python bench/recovery.py --images 300

One local server (echo engine, 0.2 s async delay) and N distinct images. Scenarios, each from
a fresh server:

* ``intact``: run, rerun with the journal: the floor (no request at all).
* ``deleted``: run, delete the journal, rerun.
* ``corrupt``: run, overwrite the journal with garbage, rerun (it is set aside).
* ``killed+deleted``: a run stopped mid-way (its deadline passes while images are still being
  sent: what a killed run leaves), the journal deleted, rerun.

For each: images uploaded again (``re-paid``, the number that must be 0 for jobs Mathpix
accepted), the rerun's ``v3/ocr-results`` requests: listing pages of the dataset (per 100
rows: target <= 1) and polls (for what the rerun itself sends or finds still processing),
and the rerun's wall time against the first run's. Before this design (issue 18) a deleted
journal re-paid every accepted image (255 of 1,000 after a kill; 328 of 1,000 with a corrupt
journal deleted).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from _results import column, table, target, write
from PIL import Image

from mathpix_nb import Mathpix
from mathpix_nb.bulk import ocr_frame
from mathpix_nb.server import LocalServer


def write_images(folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
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


def _count(server: LocalServer, endpoint: str, since: int = 0) -> int:
    return sum(1 for r in server.log[since:] if r.endpoint == endpoint)


def scenario(name: str, paths: list[str], folder: Path) -> dict[str, Any]:
    journal = folder / f"{name}.sqlite3"
    df = pd.DataFrame({"p": paths})
    kw: dict[str, Any] = {"poll_interval": 0.1, "progress": False, "concurrency": 16}
    with LocalServer(engine="echo", async_delay=0.2) as server:
        client = Mathpix(server.app_id, server.app_key, base_url=server.url)
        t0 = time.perf_counter()
        first_kw = dict(kw, timeout=1.0) if name == "killed+deleted" else kw
        first = ocr_frame(df, "p", client=client, journal=journal, **first_kw)
        first_wall = time.perf_counter() - t0
        accepted = _count(server, "/v3/text")
        unfinished = int(first["ocr_error"].notna().sum())
        if name in ("deleted", "killed+deleted"):
            for suffix in ("", "-wal", "-shm"):
                Path(str(journal) + suffix).unlink(missing_ok=True)
        elif name == "corrupt":
            for suffix in ("-wal", "-shm"):
                Path(str(journal) + suffix).unlink(missing_ok=True)
            journal.write_bytes(b"not a database" * 1000)
        mark = len(server.log)
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = ocr_frame(df, "p", client=client, journal=journal, **kw)
        rerun_wall = time.perf_counter() - t1
        uploads = _count(server, "/v3/text", mark)
        reads = _count(server, "/v3/ocr-results", mark)
        listings = sum(
            1
            for r in server.log[mark:]
            if r.endpoint == "/v3/ocr-results" and any(t.startswith("mnb-ds-") for t in r.tags)
        )
    missing = int(again["ocr_error"].notna().sum())
    return {
        "scenario": name,
        "rows": len(paths),
        "accepted_before": accepted,
        "unfinished_before": unfinished,
        "re_paid": uploads - (len(paths) - accepted),  # uploads of already-accepted images
        "new_uploads": uploads,
        "rerun_reads": reads,
        "listing_reads": listings,
        "poll_reads": reads - listings,
        "listing_reads_per_100_rows": round(100 * listings / len(paths), 3),
        "rerun_wall_s": round(rerun_wall, 3),
        "first_wall_s": round(first_wall, 3),
        "rerun_over_first": round(rerun_wall / first_wall, 3),
        "rows_missing_after_rerun": missing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["MATHPIX_NB_HOME"] = str(folder / "home")
        paths = write_images(folder, args.images)
        for name in ("intact", "deleted", "corrupt", "killed+deleted"):
            row = scenario(name, paths, folder)
            rows.append(row)
            print(
                f"{name:15} rows={row['rows']} accepted={row['accepted_before']} "
                f"re-paid={row['re_paid']} new uploads={row['new_uploads']} "
                f"listing requests={row['listing_reads']} "
                f"({row['listing_reads_per_100_rows']}/100 rows), polls={row['poll_reads']}; "
                f"rerun {row['rerun_wall_s']}s "
                f"= {row['rerun_over_first']}x the first run; missing {row['rows_missing_after_rerun']}"
            )
    if not args.no_write:
        cols = [
            column("scenario", "journal before the rerun"),
            column("rows", "rows", "d"),
            column("accepted_before", "accepted before", "d"),
            column("re_paid", "re-paid", "d"),
            column("new_uploads", "uploads of the rerun", "d"),
            column("listing_reads", "listing requests", "d"),
            column("listing_reads_per_100_rows", "listing requests / 100 rows", ".2f"),
            column("poll_reads", "polls", "d"),
            column("rerun_wall_s", "rerun wall (s)", ".2f"),
            column("rows_missing_after_rerun", "rows missing", "d"),
        ]
        write(
            "recovery",
            args=args,
            setup=(
                f"{args.images} distinct images, local echo server with 0.2 s async delay, "
                "concurrency 16, per_page 1000; a fresh server per scenario"
            ),
            tables=[table("A rerun when the journal is gone", cols, rows)],
            targets=[
                target(
                    "0 accepted images paid again, in every scenario",
                    all(r["re_paid"] == 0 for r in rows),
                ),
                target(
                    "at most 1 listing request per 100 rows",
                    all(r["listing_reads_per_100_rows"] <= 1.0 for r in rows),
                ),
                target("no row missing", all(r["rows_missing_after_rerun"] == 0 for r in rows)),
            ],
            data=rows,
        )


if __name__ == "__main__":
    main()
