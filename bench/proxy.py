"""Proxy bench: what the team proxy adds per request, and its throughput.

Three processes on loopback: the LocalServer (echo engine, no latency) as Mathpix, the team
service in proxy mode (``create_app(proxy=True)`` under uvicorn, as ``mathpix-nb token-server
--proxy`` runs it, state in a SQLite file), and this load generator. Reports:

* per-request latency of ``POST v3/text`` (a small PNG, multipart) and ``GET v3/ocr-results``
  straight to the upstream and through the proxy, one request at a time on a keep-alive
  connection (p50 / p99, ms), and the proxy's overhead (p50 and p99 differences); target
  <= 5 ms p50 on loopback;
* throughput through the proxy with 200 concurrent callers (200 distinct caller secrets, one
  connection each, connected before the clock starts), requests per second and latency
  percentiles, next to the same load sent straight to the upstream.

Run: ``python bench/proxy.py [--requests 400] [--concurrent 200] [--per-caller 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _results import column, machine, table, target, write

REPO = Path(__file__).resolve().parent.parent

UPSTREAM = """
import json, sys, time
from mathpix_nb.server import LocalServer
with LocalServer(engine="echo", max_log_records=1000) as s:
    print(json.dumps({"url": s.url, "app_id": s.app_id, "app_key": s.app_key}), flush=True)
    sys.stdin.read()
"""

SERVICE = """
import json, os, sys
from mathpix_nb._serving import serve_forever
from mathpix_nb.tokens import create_app
cfg = json.loads(sys.argv[1])
app = create_app(base_url=cfg["url"], proxy=True, state_db=cfg["db"],
                 proxy_rate_limit_per_minute=1e9, proxy_rate_limit_burst=10**9)
serve_forever(app, host="127.0.0.1", port=cfg["port"], log_level="warning", access_log=False)
"""


def _png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 48), "white")
    ImageDraw.Draw(image).text((5, 15), "x^2 + y^2 = 1", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sequential(url: str, headers: dict[str, str], n: int, png: bytes, what: str) -> list[float]:
    out = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for i in range(n + 20):
            start = time.perf_counter()
            if what == "text":
                r = http.post(
                    "/v3/text",
                    files={"file": ("x.png", png, "image/png")},
                    data={"options_json": '{"tags": ["bench"]}'},
                )
            else:
                r = http.get("/v3/ocr-results", params={"tags": "bench", "per_page": 1})
            elapsed = (time.perf_counter() - start) * 1000
            assert r.status_code == 200, r.text[:200]
            if i >= 20:  # warm-up excluded
                out.append(elapsed)
    return out


async def _concurrent(
    url: str, headers_list: list[dict[str, str]], per_caller: int, png: bytes
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    ready = asyncio.Event()
    connected = [0]
    clock: list[float] = []

    async def caller(headers: dict[str, str]) -> None:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, limits=limits
        ) as http:
            # connect first (one untimed request): the figures are of requests, not of 200
            # simultaneous TCP handshakes
            await http.post("/v3/text", files={"file": ("x.png", png, "image/png")})
            connected[0] += 1
            if connected[0] == len(headers_list):
                clock.append(time.perf_counter())
                ready.set()
            await ready.wait()
            for _ in range(per_caller):
                start = time.perf_counter()
                r = await http.post("/v3/text", files={"file": ("x.png", png, "image/png")})
                latencies.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.text[:200]

    await asyncio.gather(*(caller(h) for h in headers_list))
    elapsed = time.perf_counter() - clock[0]
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--per-caller", type=int, default=10)
    args = parser.parse_args()
    measured_on = machine()
    latency_rows: list[dict[str, Any]] = []
    throughput_rows: list[dict[str, Any]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATHPIX_")}
    env["PYTHONPATH"] = str(REPO)
    png = _png()
    up = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert up.stdout is not None
    info: dict[str, Any] = json.loads(up.stdout.readline())
    secrets = [f"bench-caller-secret-{i:04d}-xxxxxxxx" for i in range(args.concurrent)]
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="mathpix-nb-bench-")
    service_env = {
        **env,
        "MATHPIX_APP_ID": info["app_id"],
        "MATHPIX_APP_KEY": info["app_key"],
        "MATHPIX_NB_TOKEN_CALLERS": " ".join(f"c{i}={s}" for i, s in enumerate(secrets)),
    }
    cfg = {"url": info["url"], "port": port, "db": str(Path(tmp) / "state.sqlite3")}
    svc = subprocess.Popen([sys.executable, "-c", SERVICE, json.dumps(cfg)], env=service_env)
    proxy_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{proxy_url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or svc.poll() is not None:
                raise SystemExit("the proxy did not start")
            time.sleep(0.05)
        keys = {"app_id": info["app_id"], "app_key": info["app_key"]}
        bearer = {"Authorization": f"Bearer {secrets[0]}"}
        print(f"proxy bench: {args.requests} sequential requests each, loopback, echo engine")
        print(
            f"{'request':<22}{'direct p50':>12}{'p99':>9}{'proxy p50':>12}{'p99':>9}"
            f"{'overhead p50':>15}{'p99':>9}"
        )
        for what, label in (("text", "POST v3/text (PNG)"), ("results", "GET v3/ocr-results")):
            direct = _sequential(info["url"], keys, args.requests, png, what)
            proxied = _sequential(proxy_url, bearer, args.requests, png, what)
            d50, d99 = statistics.median(direct), _pct(direct, 0.99)
            p50, p99 = statistics.median(proxied), _pct(proxied, 0.99)
            print(
                f"{label:<22}{d50:>12.2f}{d99:>9.2f}{p50:>12.2f}{p99:>9.2f}"
                f"{p50 - d50:>15.2f}{p99 - d99:>9.2f}"
            )
            latency_rows.append(
                {
                    "request": label,
                    "direct_p50": d50,
                    "direct_p99": d99,
                    "proxy_p50": p50,
                    "proxy_p99": p99,
                    "overhead_p50": p50 - d50,
                    "overhead_p99": p99 - d99,
                }
            )
        n = args.concurrent
        print(f"\nthroughput: {n} concurrent callers x {args.per_caller} POST v3/text each")
        for label, url, headers in (
            ("direct", info["url"], [keys] * n),
            ("through the proxy", proxy_url, [{"Authorization": f"Bearer {s}"} for s in secrets]),
        ):
            rate, lat = asyncio.run(_concurrent(url, headers, args.per_caller, png))
            print(
                f"  {label:<18} {rate:8.0f} req/s   p50 {statistics.median(lat):7.1f} ms"
                f"   p99 {_pct(lat, 0.99):7.1f} ms"
            )
            throughput_rows.append(
                {"path": label, "rate": rate, "p50": statistics.median(lat), "p99": _pct(lat, 0.99)}
            )
        ms = "{:.2f}"
        write(
            "proxy",
            args=args,
            setup=(
                f"loopback, echo engine, no latency; {args.requests} sequential requests per "
                f"row; throughput: {n} callers x {args.per_caller} POST v3/text"
            ),
            tables=[
                table(
                    "Per request, one at a time (ms)",
                    [
                        column("request", "request"),
                        column("direct_p50", "direct p50", ".2f"),
                        column("direct_p99", "direct p99", ".2f"),
                        column("proxy_p50", "proxy p50", ".2f"),
                        column("proxy_p99", "proxy p99", ".2f"),
                        column("overhead_p50", "overhead p50", ".2f"),
                        column("overhead_p99", "overhead p99", ".2f"),
                    ],
                    latency_rows,
                ),
                table(
                    f"Throughput, {n} concurrent callers",
                    [
                        column("path", "path"),
                        column("rate", "req/s", ",.0f"),
                        column("p50", "p50 ms", ".1f"),
                        column("p99", "p99 ms", ".1f"),
                    ],
                    throughput_rows,
                ),
            ],
            targets=[
                target(
                    f"{r['request']}: proxy overhead p50 {ms.format(r['overhead_p50'])} ms (≤ 5)",
                    r["overhead_p50"] <= 5,
                )
                for r in latency_rows
            ],
            machine_info=measured_on,
        )
    finally:
        svc.terminate()
        svc.wait(timeout=10)
        assert up.stdin is not None
        up.stdin.close()
        up.wait(timeout=10)


if __name__ == "__main__":
    main()
