"""Bulk OCR benchmark: mathpix_nb's tagged-async flow vs the floor, mpxpy and a naive loop.

    python bench/bulk.py                  # the whole thing, in one run (~10-15 min on 2 cores)
    python bench/bulk.py --mem-rows 20000 # a quicker memory check

Everything runs against the local server (``mathpix-nb serve``) in its own process, so the
server does not share our interpreter's GIL, with a latency model and a concurrency cap:

* floor: the least wall time the server's cap and latency model allow for the bytes we
  sent: sum over images of (latency_base + latency_per_kb * KB) / max_concurrency;
* ours: ``ocr_frame`` on N images (wall time, ratio to the floor, requests per image);
* mpxpy 0.0.23: ``image_new(is_async=True)`` + ``wait_until_complete()`` per image, run on a
  smaller N and extrapolated per image;
* naive httpx: one synchronous ``v3/text`` POST after another, smaller N, extrapolated;
* memory: peak RSS growth of a child process running ``ocr_frame`` over a 100,000-row
  DataFrame (echo engine, no latency), next to the size of the result columns.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

APP_ID, APP_KEY = "local-app", "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(**opts: Any):  # type: ignore[no-untyped-def]
    """``mathpix-nb serve`` in a child process; yields its URL."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mathpix_nb",
        "serve",
        "--port",
        str(port),
        "--app-id",
        APP_ID,
        "--app-key",
        APP_KEY,
        "--engine",
        "echo",
    ]
    for name, value in opts.items():
        if value is not None:
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/_local/health", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the local server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    """Distinct noisy JPEGs of varied size (about 5-40 KB), like cropped scans."""
    rng = np.random.default_rng(start)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        w, h = int(rng.integers(80, 260)), int(rng.integers(60, 160))
        arr = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        p = folder / f"img{i:06d}.jpg"
        Image.fromarray(arr, "L").save(p, format="JPEG", quality=80)
        paths.append(p)
    return paths


def sent_bytes(paths: list[Path]) -> list[int]:
    """What the client core uploads for each file (prepared exactly as ocr_frame does)."""
    from mathpix_nb._images import prepare_image

    return [len(prepare_image(p).data) for p in paths]


def run_ours(url: str, paths: list[Path], *, concurrency: int, poll: float) -> dict[str, Any]:
    import pandas as pd

    from mathpix_nb import Mathpix
    from mathpix_nb.bulk import ocr_frame

    client = Mathpix(APP_ID, APP_KEY, base_url=url)
    df = pd.DataFrame({"image_path": [str(p) for p in paths]})
    t0 = time.perf_counter()
    out = ocr_frame(
        df, "image_path", client=client, concurrency=concurrency, poll_interval=poll, progress=False
    )
    wall = time.perf_counter() - t0
    summary = out.attrs["mathpix_summary"]
    ok = int(out["ocr_error"].isna().sum())
    return {"wall": wall, "ok": ok, "requests": summary["requests"], "summary": summary}


def run_naive(url: str, paths: list[Path]) -> dict[str, Any]:
    headers = {"app_id": APP_ID, "app_key": APP_KEY}
    ok = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for p in paths:
            r = http.post(
                f"{url}/v3/text",
                headers=headers,
                files={"file": (p.name, p.read_bytes(), "image/jpeg")},
                data={"options_json": json.dumps({"formats": ["text"]})},
            )
            ok += "text" in r.json()
    return {"wall": time.perf_counter() - t0, "ok": ok, "requests": len(paths)}


def run_mpxpy(url: str, paths: list[Path]) -> dict[str, Any]:
    import requests.adapters
    from mpxpy.mathpix_client import MathpixClient

    calls = [0]
    original = requests.adapters.HTTPAdapter.send

    def counting_send(self, request, *a, **kw):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return original(self, request, *a, **kw)

    requests.adapters.HTTPAdapter.send = counting_send  # type: ignore[method-assign]
    try:
        client = MathpixClient(app_id=APP_ID, app_key=APP_KEY, api_url=url)
        ok = 0
        t0 = time.perf_counter()
        for p in paths:
            image = client.image_new(file_path=str(p), is_async=True)
            ok += bool(image.wait_until_complete(timeout=60))
        wall = time.perf_counter() - t0
    finally:
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]
    return {"wall": wall, "ok": ok, "requests": calls[0]}


_MEM_CHILD = r"""
import json, os, resource, sys, time
import pandas as pd
from mathpix_nb import Mathpix
from mathpix_nb.bulk import ocr_frame

url, folder, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Mathpix("local-app", "bench-key", base_url=url)
paths = [os.path.join(folder, f"{i}.png") for i in range(rows)]
df = pd.DataFrame({"image_path": paths})
# warm up (imports, threads, pools) on a few rows, then measure the real run
ocr_frame(df.head(50), "image_path", client=client, journal=False, progress=False,
          poll_interval=0.2)
def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
base = rss()
t0 = time.perf_counter()
out = ocr_frame(df, "image_path", client=client, concurrency=16, poll_interval=0.25,
                progress=False)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cols = [c for c in out.columns if c.startswith("ocr_")]
result_bytes = int(out[cols].memory_usage(deep=True).sum())
print(json.dumps({"base": base, "peak": peak, "after": rss(), "wall": wall,
                  "ok": int(out["ocr_error"].isna().sum()), "result_bytes": result_bytes,
                  "input_bytes": int(df.memory_usage(deep=True).sum()),
                  "requests": out.attrs["mathpix_summary"]["requests"]}))
"""


def run_memory(rows: int, tmp: Path) -> dict[str, Any]:
    folder = tmp / "tiny"
    folder.mkdir()
    for i in range(rows):
        im = Image.new("L", (4, 4), 255)
        for n, byte in enumerate(i.to_bytes(4, "big")):
            im.putpixel((n, 0), byte)
        im.putpixel((3, 3), 0)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        (folder / f"{i}.png").write_bytes(buf.getvalue())
    env = dict(os.environ, MATHPIX_NB_HOME=str(tmp / "home"))
    with server() as url:
        proc = subprocess.run(
            [sys.executable, "-c", _MEM_CHILD, url, str(folder), str(rows)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="images for our run (default 1000)")
    ap.add_argument("--naive-n", type=int, default=60)
    ap.add_argument("--mpxpy-n", type=int, default=12)
    ap.add_argument("--mem-rows", type=int, default=100_000)
    ap.add_argument("--latency-base", type=float, default=0.25)
    ap.add_argument("--latency-per-kb", type=float, default=0.005)
    ap.add_argument("--cap", type=int, default=8, help="server max_concurrency")
    ap.add_argument("--concurrency", type=int, default=8, help="our concurrency")
    ap.add_argument("--poll-interval", type=float, default=0.25)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        os.environ["MATHPIX_NB_HOME"] = str(tmp / "home")  # a fresh journal: no cache hits
        print(
            f"# bench/bulk.py  python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
            f"load avg {os.getloadavg()[0]:.1f}"
        )
        paths = make_images(tmp / "imgs", args.n)
        sizes = sent_bytes(paths)
        lb, lk, cap = args.latency_base, args.latency_per_kb, args.cap
        floor = sum(lb + lk * b / 1024 for b in sizes) / cap
        per_image_floor = floor / args.n
        print(f"server: echo engine, latency_base={lb}s latency_per_kb={lk}s max_concurrency={cap}")
        print(
            f"images: {args.n} distinct JPEGs, {sum(sizes) / 1e6:.1f} MB sent "
            f"(mean {sum(sizes) / len(sizes) / 1024:.1f} KB)"
        )
        print(
            f"floor (cap + latency model, bytes sent): {floor:.2f}s "
            f"= {per_image_floor * 1000:.1f} ms/image"
        )

        with server(latency_base=lb, latency_per_kb=lk, max_concurrency=cap) as url:
            ours = run_ours(url, paths, concurrency=args.concurrency, poll=args.poll_interval)
            naive_paths = make_images(tmp / "naive", args.naive_n, start=10_000_000)
            naive = run_naive(url, naive_paths)
            mpx_paths = make_images(tmp / "mpx", args.mpxpy_n, start=20_000_000)
            mpx = run_mpxpy(url, mpx_paths)

        print()
        print(
            f"{'run':<34}{'N':>7}{'ok':>7}{'wall s':>10}{'ms/img':>10}{'req/img':>9}{'x floor':>9}"
        )
        naive_sizes = sent_bytes(naive_paths)
        mpx_sizes = sent_bytes(mpx_paths)
        rows = [
            ("mathpix_nb ocr_frame (async+tags)", args.n, ours, sizes),
            ("naive httpx loop (sync v3/text)", args.naive_n, naive, naive_sizes),
            ("mpxpy image_new+wait_until_complete", args.mpxpy_n, mpx, mpx_sizes),
        ]
        for name, n, r, sz in rows:
            own_floor = sum(lb + lk * b / 1024 for b in sz) / cap
            print(
                f"{name:<34}{n:>7}{r['ok']:>7}{r['wall']:>10.2f}{r['wall'] / n * 1000:>10.1f}"
                f"{r['requests'] / n:>9.3f}{r['wall'] / own_floor:>9.2f}"
            )
        print()
        print(f"ours vs floor: {ours['wall'] / floor:.3f}x  (goal <= 1.15x)")
        naive_n_est = naive["wall"] / args.naive_n * args.n
        mpx_n_est = mpx["wall"] / args.mpxpy_n * args.n
        print(
            f"naive httpx loop, extrapolated to {args.n} images: {naive_n_est:.1f}s -> ours is "
            f"{naive_n_est / ours['wall']:.1f}x faster"
        )
        print(
            f"mpxpy loop, extrapolated to {args.n} images: {mpx_n_est:.1f}s -> ours is "
            f"{mpx_n_est / ours['wall']:.1f}x faster  (goal >= 20x)"
        )
        print(f"our summary: {ours['summary']}")

        if args.mem_rows:
            print()
            mem = run_memory(args.mem_rows, tmp)
            growth = mem["peak"] - mem["base"]
            print(
                f"memory, {args.mem_rows} rows (echo engine, no latency, child process): "
                f"{mem['ok']} ok in {mem['wall']:.0f}s, {mem['requests']} requests"
            )
            print(
                f"  RSS before run {mem['base'] / 2**20:.0f} MiB, peak {mem['peak'] / 2**20:.0f}"
                f" MiB -> peak growth {growth / 2**20:.0f} MiB = {growth / args.mem_rows:.0f} "
                f"B/row"
            )
            print(
                f"  result columns (pandas deep size): {mem['result_bytes'] / 2**20:.0f} MiB = "
                f"{mem['result_bytes'] / args.mem_rows:.0f} B/row; input column "
                f"{mem['input_bytes'] / 2**20:.0f} MiB"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
