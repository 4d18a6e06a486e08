"""Bulk OCR bench: ``df.mathpix.ocr`` against best-effort peers, per corpus, against the floor.

    python bench/bulk.py --quick      # small N, cap 8 only (< 2 minutes)
    python bench/bulk.py              # full: caps 8 and 16, larger N (~15 minutes on 2 shared cores)

Every run gets a fresh local server (``mathpix_nb.server``, echo engine) in its own process
with the seed's size-proportional latency model (250 ms + 5 ms per KB of image received)
under a concurrency cap, and every runner runs in its own process too (``bench/_peers.py``),
so CPU and peak RSS are the runner's own. Runners:

* ``gather_raw``: ``asyncio.gather`` + a semaphore (= the cap) over one pooled
  ``httpx.AsyncClient``, the files sent as they are, multipart, with retries on 429/5xx: what
  a competent user writes in 30 lines;
* ``gather_prepared``: the same, sending mathpix_nb's public ``prepare_image`` bytes
  (prepared in ``asyncio.to_thread``);
* ``mpxpy``: the official client (0.0.23), its synchronous ``image_new`` in 16 threads;
* ``ours``: ``df.mathpix.ocr(column, concurrency=cap)`` (async requests with tags, polled
  from ``v3/ocr-results``; a fresh journal per run).

Corpora (made here, reusing ``bench/upload.py`` and ``bench/legibility.py``; a few base
images each, every file made distinct by a comment/tEXt chunk: new bytes, same pixels):
tiny noisy JPEGs (80-260 px), 12 MP phone photos (4032x3024 JPEG, EXIF-rotated), 300-dpi A4
pages (2480x3508: half clean render PNG, half grayscale scan PNG, which is over the API's
5 MB body limit as it is), screenshots (PNG, 1200x500 to 2560x1440).

Figures per (corpus, cap, runner), from the server's side where they are about the wire:
wall / floor (floor = the latency model's ideal time at the cap for the bytes that runner
sent: max(sum of delays / cap, longest delay)), wall against ours, client CPU per image,
HTTP body KB up and down per image, requests per image, peak RSS growth. Then two scenarios
where a journal matters (a rerun after a ``kill -9`` mid-run; duplicate images) with paid
requests and bytes, and the RSS growth per row of an echo run without latency.
Prints markdown tables; writes ``bench/results/bulk.json`` (``bulk-quick.json`` for --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _peers import make_corpus  # noqa: E402
from _results import column, machine, table, target, write  # noqa: E402

PEERS = HERE / "_peers.py"
RUNNERS = ("gather_raw", "gather_prepared", "mpxpy", "ours")
CORPORA = ("tiny", "photos", "a4", "screenshots")
LABELS = {
    "tiny": "tiny JPEGs",
    "photos": "12 MP photos",
    "a4": "A4 300 dpi",
    "screenshots": "screenshots",
}
QUICK = {"tiny": 32, "photos": 8, "a4": 8, "screenshots": 8}
FULL = {"tiny": 400, "photos": 64, "a4": 48, "screenshots": 120}


@contextmanager
def server(cap: int, lb: float, lk: float) -> Iterator[str]:
    """A fresh counting local server in a child process; yields its URL."""
    cmd = [sys.executable, str(PEERS), "serve", "--cap", str(cap)]
    cmd += ["--latency-base", str(lb), "--latency-per-kb", str(lk)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the bench server did not start")
        yield url
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def counters(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/_bench/counters", timeout=30).json())


def run_child(
    runner: str,
    url: str,
    cap: int,
    paths: list[Path],
    tmp: Path,
    *,
    journal: str = "",
    poll: float = 0.0,
    kill_when_paid: int | None = None,
) -> dict[str, Any] | None:
    """One runner in its own process; None when it was killed on purpose: SIGKILL once the
    server has been paid for ``kill_when_paid`` images (an interruption nothing cleans up)."""
    listing = tmp / f"list-{runner}.json"
    listing.write_text(json.dumps([str(p) for p in paths]))
    out = tmp / f"out-{runner}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(PEERS), "run", runner, url, str(cap), str(listing), str(out)]
    if runner == "ours":
        cmd += [journal or str(tmp / f"journal-{time.monotonic_ns()}.sqlite3"), str(poll)]
    env = dict(os.environ, MATHPIX_NB_HOME=str(tmp / "home"))
    proc = subprocess.Popen(cmd, env=env)
    if kill_when_paid is not None:
        while proc.poll() is None:
            if counters(url)["paid_images"] >= kill_when_paid:
                proc.kill()
                proc.wait()
                return None
            time.sleep(0.05)
    try:
        proc.wait(timeout=3600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"runner {runner} failed ({proc.returncode})")
    return dict(json.loads(out.read_text()))


def floor_of(c: dict[str, Any], cap: int) -> float:
    return max(float(c["work"]) / cap, float(c["max_delay"]))


def measure(
    runner: str, corpus: str, cap: int, paths: list[Path], tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    with server(cap, args.latency_base, args.latency_per_kb) as url:
        r = run_child(runner, url, cap, paths, tmp, poll=args.poll_interval)
        c = counters(url)
    assert r is not None
    n = len(paths)
    floor = floor_of(c, cap)
    up = sum(c[k]["up"] for k in ("upload", "poll", "other"))
    down = sum(c[k]["down"] for k in ("upload", "poll", "other"))
    reqs = sum(c[k]["requests"] for k in ("upload", "poll", "other"))
    row = {
        "corpus": corpus,
        "cap": cap,
        "runner": runner,
        "n": n,
        "ok": r["ok"],
        "wall_s": r["wall"],
        "floor_s": floor,
        "x_floor": r["wall"] / floor if floor else None,
        "cpu_ms_per_image": r["cpu"] / n * 1000,
        "kb_up_per_image": up / n / 1000,
        "kb_down_per_image": down / n / 1000,
        "requests_per_image": reqs / n,
        "paid_images": c["paid_images"],
        "poll_down_bytes": c["poll"]["down"],
        "poll_requests": c["poll"]["requests"],
        "result_bytes": c["result_bytes"],
        "poll_x_result": c["poll"]["down"] / c["result_bytes"] if c["result_bytes"] else None,
        "peak_rss_growth_mb": r["rss_growth"] / 2**20,
        "peak_in_flight": c["peak_in_flight"],
    }
    print(
        f"  {corpus:<11} cap {cap:<2} {runner:<15} n={n:<4} ok={r['ok']:<4} "
        f"wall {r['wall']:7.2f}s  floor {floor:6.2f}s  x{row['x_floor'] or 0:5.2f}  "
        f"cpu {row['cpu_ms_per_image']:6.1f} ms/img",
        flush=True,
    )
    return row


def scenario_resume(
    paths: list[Path], cap: int, tmp: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Run 1 is killed (SIGKILL) once half the images are paid for; run 2 is the same command
    (the peer has no memory of run 1; ours has its journal)."""
    rows = []
    for runner in ("gather_prepared", "ours"):
        journal = str(tmp / f"resume-{runner}.sqlite3")
        with server(cap, args.latency_base, args.latency_per_kb) as url:
            half = len(paths) // 2
            run_child(runner, url, cap, paths, tmp, journal=journal, kill_when_paid=half)
            first = counters(url)
            r = run_child(runner, url, cap, paths, tmp, journal=journal, poll=args.poll_interval)
            c = counters(url)
        assert r is not None
        rows.append(
            {
                "scenario": "rerun after kill -9",
                "runner": runner,
                "n": len(paths),
                "paid_before_kill": first["paid_images"],
                "paid_total": c["paid_images"],
                "upload_mb_total": (c["upload"]["up"]) / 1e6,
                "rerun_wall_s": r["wall"],
                "rerun_ok": r["ok"],
                "requests_total": sum(c[k]["requests"] for k in ("upload", "poll", "other")),
            }
        )
    return rows


def scenario_dedupe(
    distinct: list[Path], cap: int, tmp: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Each distinct photo twice: half as a copy under another name, half as a repeated row."""
    copies = []
    for i, p in enumerate(distinct):
        if i % 2 == 0:
            q = p.with_name("copy_" + p.name)
            shutil.copyfile(p, q)
            copies.append(q)
        else:
            copies.append(p)
    rows_paths = distinct + copies
    rows = []
    for runner in ("gather_prepared", "ours"):
        with server(cap, args.latency_base, args.latency_per_kb) as url:
            r = run_child(runner, url, cap, rows_paths, tmp, poll=args.poll_interval)
            c = counters(url)
        assert r is not None
        rows.append(
            {
                "scenario": "every image twice",
                "runner": runner,
                "n": len(rows_paths),
                "distinct": len(distinct),
                "ok": r["ok"],
                "paid_total": c["paid_images"],
                "upload_mb_total": c["upload"]["up"] / 1e6,
                "wall_s": r["wall"],
                "requests_total": sum(c[k]["requests"] for k in ("upload", "poll", "other")),
            }
        )
    return rows


_MEM_CHILD = r"""
import json, os, sys, time
import pandas as pd
import mathpix_nb.pandas
from mathpix_nb import Mathpix

url, folder, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Mathpix("local-app", "bench-key", base_url=url)
paths = [os.path.join(folder, f"{i}.png") for i in range(rows)]
df = pd.DataFrame({"image_path": paths})
# warm up (imports, threads, pools) on a few rows, then measure the real run
df.head(50).mathpix.ocr("image_path", client=client, journal=False, progress=False,
                        poll_interval=0.2)
from _peers import _status, reset_peak_rss
reset_peak_rss()
base = _status("VmRSS")
t0 = time.perf_counter()
out = df.mathpix.ocr("image_path", client=client, concurrency=16, poll_interval=0.25,
                     progress=False)
wall = time.perf_counter() - t0
peak = _status("VmHWM")
cols = [c for c in out.columns if c.startswith("ocr_")]
print(json.dumps({"base": base, "peak": peak, "wall": wall,
                  "ok": int(out["ocr_error"].isna().sum()),
                  "result_bytes": int(out[cols].memory_usage(deep=True).sum())}))
"""


def run_memory(rows: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS growth per row of ``df.mathpix.ocr`` over ``rows`` 4x4 PNGs (echo, no latency)."""
    import io

    from PIL import Image

    folder = tmp / "mem"
    folder.mkdir()
    for i in range(rows):
        im = Image.new("L", (4, 4), 255)
        for n, byte in enumerate(i.to_bytes(4, "big")):
            im.putpixel((n, 0), byte)
        im.putpixel((3, 3), 0)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        (folder / f"{i}.png").write_bytes(buf.getvalue())
    env = dict(os.environ, MATHPIX_NB_HOME=str(tmp / "mem-home"))
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    with server(0, 0.0, 0.0) as url:
        proc = subprocess.run(
            [sys.executable, "-c", _MEM_CHILD, url, str(folder), str(rows)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    mem = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    growth = mem["peak"] - mem["base"]
    return {
        "rows": rows,
        "ok": mem["ok"],
        "wall_s": mem["wall"],
        "peak_growth_mb": growth / 2**20,
        "bytes_per_row": growth / rows,
        "result_bytes_per_row": mem["result_bytes"] / rows,
    }


# ------------------------------------------------------------------------------ reporting


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def main_table(rows: list[dict[str, Any]]) -> str:
    ours = {(r["corpus"], r["cap"]): r for r in rows if r["runner"] == "ours"}
    out = [
        "| corpus | cap | runner | N | ok | wall s | floor s | × floor | wall ÷ ours | "
        "CPU ms/img | KB up/img | KB down/img | req/img | poll ÷ results | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mine = ours.get((r["corpus"], r["cap"]))
        vs = r["wall_s"] / mine["wall_s"] if mine else None
        name = f"**{r['runner']}**" if r["runner"] == "ours" else r["runner"]
        out.append(
            f"| {LABELS[r['corpus']]} | {r['cap']} | {name} | {r['n']} | {r['ok']} | "
            f"{fmt(r['wall_s'])} | {fmt(r['floor_s'])} | {fmt(r['x_floor'])} | {fmt(vs)} | "
            f"{fmt(r['cpu_ms_per_image'], 1)} | {fmt(r['kb_up_per_image'], 1)} | "
            f"{fmt(r['kb_down_per_image'], 1)} | {fmt(r['requests_per_image'], 3)} | "
            f"{fmt(r['poll_x_result'])} | {fmt(r['peak_rss_growth_mb'], 0)} |"
        )
    return "\n".join(out)


def scenario_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| scenario | runner | rows | paid requests | MB uploaded | wall s (rerun) | ok |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        wall = r.get("rerun_wall_s", r.get("wall_s"))
        ok = r.get("rerun_ok", r.get("ok"))
        label = r["scenario"]
        if "paid_before_kill" in r:
            label += f" (killed when {r['paid_before_kill']} were paid)"
        else:
            label += f" ({r['distinct']} distinct)"
        out.append(
            f"| {label} | {r['runner']} | {r['n']} | {r['paid_total']} | "
            f"{r['upload_mb_total']:.2f} | {wall:.2f} | {ok} |"
        )
    return "\n".join(out)


def targets(rows: list[dict[str, Any]], mem: dict[str, Any] | None) -> list[str]:
    """Issue 12's targets, each with the figure and met/missed."""

    def get(corpus: str, cap: int, runner: str) -> dict[str, Any] | None:
        for r in rows:
            if (r["corpus"], r["cap"], r["runner"]) == (corpus, cap, runner):
                return r
        return None

    lines = []

    def say(text: str, ok: bool) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {text}")

    caps = sorted({r["cap"] for r in rows})
    for cap in caps:
        for corpus, limit in (("photos", 1.15), ("a4", 1.5)):
            r = get(corpus, cap, "ours")
            if r and r["x_floor"]:
                say(
                    f"{LABELS[corpus]} at cap {cap}: {r['x_floor']:.2f}× floor (≤ {limit})",
                    r["x_floor"] <= limit,
                )
        ours, raw = get("photos", cap, "ours"), get("photos", cap, "gather_raw")
        if ours and raw:
            speed = raw["wall_s"] / ours["wall_s"]
            best = raw["floor_s"] / ours["floor_s"]  # what the latency model allows at most
            say(
                f"photos at cap {cap}: {speed:.1f}× faster than gather_raw (≥ 10; the floors'"
                f" ratio, the most the latency model allows, is {best:.1f}×)",
                speed >= 10,
            )
        ours = get("tiny", cap, "ours")
        for peer in ("gather_raw", "gather_prepared"):
            other = get("tiny", cap, peer)
            if ours and other:
                ratio = ours["wall_s"] / other["wall_s"]
                say(f"tiny at cap {cap}: ours' wall {ratio:.3f}× {peer}'s (≤ 1.0)", ratio <= 1.0)
        if ours:
            cpu = ours["cpu_ms_per_image"]
            say(f"tiny at cap {cap}: client CPU {cpu:.2f} ms per image (≤ 1.5)", cpu <= 1.5)
        worst = max(
            (r for r in rows if r["runner"] == "ours" and r["cap"] == cap and r["poll_x_result"]),
            key=lambda r: r["poll_x_result"],
            default=None,
        )
        if worst:
            ratio = worst["poll_x_result"]
            say(
                f"poll bytes at cap {cap}: at most {ratio:.2f}× result bytes "
                f"({LABELS[worst['corpus']]}) (≤ 1.3)",
                ratio <= 1.3,
            )
    if mem:
        kb = mem["bytes_per_row"] / 1000
        say(f"peak RSS growth {kb:.2f} KB/row over {mem['rows']:,} rows (≤ 1.2)", kb <= 1.2)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N, cap 8 only (< 2 minutes)")
    ap.add_argument("--caps", type=int, nargs="+", help="server concurrency caps (8 16)")
    ap.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    ap.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every N")
    ap.add_argument("--latency-base", type=float, default=0.25)
    ap.add_argument("--latency-per-kb", type=float, default=0.005)
    ap.add_argument(
        "--poll-interval", type=float, default=0.0, help="ours' poll interval (0: its default)"
    )
    ap.add_argument("--mem-rows", type=int, help="rows of the memory run (0 skips it)")
    ap.add_argument("--no-scenarios", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    caps = args.caps or ([8] if args.quick else [8, 16])
    sizes = {k: max(2, round(v * args.scale)) for k, v in (QUICK if args.quick else FULL).items()}
    mem_rows = args.mem_rows if args.mem_rows is not None else (500 if args.quick else 20_000)
    out_path = args.out or HERE / "results" / ("bulk-quick.json" if args.quick else "bulk.json")
    cache = Path(tempfile.gettempdir()) / "mathpix_nb-bench-bulk-corpus-v1"

    measured_on = machine()
    started = time.perf_counter()
    header = (
        f"bench/bulk.py {'--quick ' if args.quick else ''}python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}, "
        f"latency {args.latency_base * 1000:.0f} ms + {args.latency_per_kb * 1000:.0f} ms/KB, "
        f"caps {caps}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print("#", header, flush=True)
    rows: list[dict[str, Any]] = []
    scenarios: list[dict[str, Any]] = []
    mem = None
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        corpora = {}
        for corpus in args.corpora:
            corpora[corpus] = make_corpus(corpus, tmp / corpus, sizes[corpus], cache)
            size = sum(p.stat().st_size for p in corpora[corpus])
            print(f"  corpus {corpus}: {len(corpora[corpus])} files, {size / 1e6:.1f} MB")
        for cap in caps:
            for corpus in args.corpora:
                for runner in args.runners:
                    rows.append(measure(runner, corpus, cap, corpora[corpus], tmp, args))
        if not args.no_scenarios:
            n = 12 if args.quick else 48
            distinct = make_corpus("photos", tmp / "scen", n, cache, start=100_000)
            scenarios += scenario_resume(distinct, 8, tmp, args)
            n = 8 if args.quick else 48
            dup = make_corpus("photos", tmp / "dup", n, cache, start=200_000)
            scenarios += scenario_dedupe(dup, 8, tmp, args)
        if mem_rows:
            mem = run_memory(mem_rows, tmp)

    print()
    print("#", header)
    print()
    print(main_table(rows))
    if scenarios:
        print()
        print(scenario_table(scenarios))
    if mem:
        print()
        print(
            f"memory: {mem['rows']:,} rows (4x4 PNGs, echo, no latency, concurrency 16): peak RSS "
            f"growth {mem['peak_growth_mb']:.0f} MiB = {mem['bytes_per_row'] / 1000:.2f} KB/row "
            f"(result columns {mem['result_bytes_per_row'] / 1000:.2f} KB/row), "
            f"{mem['wall_s']:.0f} s, {mem['ok']} ok"
        )
    print()
    print("targets (issue 12):")
    goal_lines = targets(rows, mem)
    print("\n".join(goal_lines))
    elapsed = time.perf_counter() - started
    print(f"\n(bench took {elapsed:.0f} s)")
    write(
        out_path.stem,
        args=args,
        setup=(
            f"`mathpix-nb serve` in its own process (echo engine), latency "
            f"{args.latency_base * 1000:.0f} ms + {args.latency_per_kb * 1000:.0f} ms/KB per "
            f"image, caps {caps}; every runner in its own process"
        ),
        tables=result_tables(rows, scenarios, mem),
        targets=[target(line.split(": ", 1)[1], line.startswith("- met")) for line in goal_lines],
        data={
            "header": header,
            "runs": rows,
            "scenarios": scenarios,
            "memory": mem,
            "elapsed_s": elapsed,
        },
        machine_info=measured_on,
        out=out_path,
    )
    print(f"wrote {out_path}")
    return 0


def result_tables(
    rows: list[dict[str, Any]], scenarios: list[dict[str, Any]], mem: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The tables printed above, as bench/results data (the docs render them)."""
    ours = {(r["corpus"], r["cap"]): r for r in rows if r["runner"] == "ours"}
    runs = []
    for r in rows:
        mine = ours.get((r["corpus"], r["cap"]))
        runs.append(
            {
                **r,
                "corpus": LABELS[r["corpus"]],
                "runner": f"**{r['runner']}**" if r["runner"] == "ours" else r["runner"],
                "x_ours": r["wall_s"] / mine["wall_s"] if mine else None,
            }
        )
    tables = [
        table(
            "Runs",
            [
                column("corpus", "corpus"),
                column("cap", "cap", "d"),
                column("runner", "runner"),
                column("n", "N", "d"),
                column("ok", "ok", "d"),
                column("wall_s", "wall s", ",.2f"),
                column("floor_s", "floor s", ",.2f"),
                column("x_floor", "× floor", ".2f"),
                column("x_ours", "wall ÷ ours", ".2f"),
                column("cpu_ms_per_image", "CPU ms/img", ",.1f"),
                column("kb_up_per_image", "KB up/img", ",.1f"),
                column("kb_down_per_image", "KB down/img", ",.1f"),
                column("requests_per_image", "req/img", ".3f"),
                column("poll_x_result", "poll ÷ results", ".2f"),
                column("peak_rss_growth_mb", "peak RSS MB", ",.0f"),
            ],
            runs,
        )
    ]
    if scenarios:
        scen = []
        for r in scenarios:
            label = r["scenario"]
            if "paid_before_kill" in r:
                label += f" (killed when {r['paid_before_kill']} were paid)"
            else:
                label += f" ({r['distinct']} distinct)"
            scen.append(
                {
                    **r,
                    "label": label,
                    "wall": r.get("rerun_wall_s", r.get("wall_s")),
                    "ok_rows": r.get("rerun_ok", r.get("ok")),
                }
            )
        tables.append(
            table(
                "Where a journal matters",
                [
                    column("label", "scenario"),
                    column("runner", "runner"),
                    column("n", "rows", "d"),
                    column("paid_total", "paid requests", "d"),
                    column("upload_mb_total", "MB uploaded", ".2f"),
                    column("wall", "wall s (rerun)", ".2f"),
                    column("ok_rows", "ok", "d"),
                ],
                scen,
            )
        )
    if mem:
        tables.append(
            table(
                "Memory (4x4 PNGs, echo engine, no latency, concurrency 16)",
                [
                    column("rows", "rows", ",d"),
                    column("peak_growth_mb", "peak RSS growth MiB", ",.0f"),
                    column("kb_per_row", "KB/row", ".2f"),
                    column("result_kb_per_row", "result columns KB/row", ".2f"),
                    column("wall_s", "wall s", ",.0f"),
                    column("ok", "ok", ",d"),
                ],
                [
                    {
                        **mem,
                        "kb_per_row": mem["bytes_per_row"] / 1000,
                        "result_kb_per_row": mem["result_bytes_per_row"] / 1000,
                    }
                ],
            )
        )
    return tables


if __name__ == "__main__":
    raise SystemExit(main())
