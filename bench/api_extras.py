"""Bench for the rest of the API: v3/batch vs one v3/text per URL, and a live strokes session
(incremental strokes) vs resending the whole drawing on every stroke.

All paths run in one process against one ``LocalServer`` with a latency model, measured in
the same run:

* batch: ``client.batch(urls)`` (one POST, then polls: every 0.1 s, or the default waits,
  about 1 s per 5 images first, as the docs advise) vs ``AsyncMathpix.text(url)`` per URL,
  ``--concurrency`` at a time (the fair peer: concurrent, not one by one), and the floor the
  latency model allows (images * latency / concurrency cap). Reported: wall, ratio to the
  floor, HTTP requests.
* ink: a drawing of ``--strokes`` strokes written stroke by stroke, read after each stroke:
  ``strokes_session().add(stroke)`` (only the new stroke goes out) vs ``strokes(drawing)``
  each time (everything so far). Reported: request bytes sent, wall, Mathpix sessions.

Run: ``python bench/api_extras.py [--images 60] [--latency 0.2] [--strokes 40]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import time
from typing import Any

import httpx
from _results import column, machine, table, write
from PIL import Image, ImageDraw

from mathpix_nb import AsyncMathpix, Mathpix
from mathpix_nb.server import LocalServer


def png(mark: int) -> bytes:
    im = Image.new("RGB", (320, 80), "white")
    ImageDraw.Draw(im).text((10, 30), f"x^{mark} + y", fill="black")
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    return buffer.getvalue()


def stroke(i: int, points: int = 24) -> list[tuple[float, float]]:
    x0 = 30 * (i % 20)
    y0 = 60 * (i // 20)
    return [
        (round(x0 + 10 * math.cos(t / 4), 1), round(y0 + 20 * math.sin(t / 4), 1))
        for t in range(points)
    ]


def bench_batch(srv: LocalServer, images: int, cap: int, latency: float) -> list[dict[str, Any]]:
    urls = {f"k{i}": srv.host_file(png(i), f"{i}.png") for i in range(images)}
    floor = images * latency / cap
    print(f"v3/batch vs v3/text per URL: {images} images, {latency:g} s each, cap {cap}")
    print(f"{'path':<28}{'wall s':>9}{'x floor':>9}{'requests':>10}")
    print(f"{'floor':<28}{floor:>9.2f}{1.0:>9.2f}{'':>10}")
    rows: list[dict[str, Any]] = [
        {"path": "floor", "wall": floor, "x_floor": 1.0, "requests": None}
    ]

    for label, interval in (("batch, polls every 0.1 s", 0.1), ("batch, the docs' waits", None)):
        before = len(srv.log)
        t0 = time.perf_counter()
        with Mathpix(srv.app_id, srv.app_key, base_url=srv.url) as client:
            result = client.batch(urls, poll_interval=interval)
        wall = time.perf_counter() - t0
        assert result.done and not result.errors
        sent = len(srv.log) - before
        print(f"{label:<28}{wall:>9.2f}{wall / floor:>9.2f}{sent:>10}")
        rows.append({"path": label, "wall": wall, "x_floor": wall / floor, "requests": sent})

    async def per_url() -> float:
        gate = asyncio.Semaphore(cap)
        async with AsyncMathpix(srv.app_id, srv.app_key, base_url=srv.url) as client:

            async def one(url: str) -> None:
                async with gate:
                    await client.text(url)

            start = time.perf_counter()
            await asyncio.gather(*(one(u) for u in urls.values()))
            return time.perf_counter() - start

    before = len(srv.log)
    wall = asyncio.run(per_url())
    sent = len(srv.log) - before
    print(f"{f'text() x {images}, {cap} at once':<28}{wall:>9.2f}{wall / floor:>9.2f}{sent:>10}")
    label = f"text() x {images}, {cap} at once"
    rows.append({"path": label, "wall": wall, "x_floor": wall / floor, "requests": sent})
    return rows


def bench_ink(srv: LocalServer, count: int) -> list[dict[str, Any]]:
    drawing = [stroke(i) for i in range(count)]
    print(f"\nink: {count} strokes of 24 points, read after each stroke")
    print(f"{'path':<34}{'KB sent':>9}{'wall s':>9}{'sessions':>10}")
    rows: list[dict[str, Any]] = []
    for name in ("session.add(new stroke)", "strokes(whole drawing)"):
        sent: list[int] = []

        def count_bytes(request: httpx.Request, sent: list[int] = sent) -> None:
            if request.url.path == "/v3/strokes":
                sent.append(len(request.content))

        http = httpx.Client(event_hooks={"request": [count_bytes]})
        with Mathpix(srv.app_id, srv.app_key, base_url=srv.url, http_client=http) as client:
            t0 = time.perf_counter()
            if name.startswith("session"):
                session = client.strokes_session()
                for s in drawing:
                    last = session.add([s])
                sessions = session.sessions
            else:
                for n in range(1, count + 1):
                    last = client.strokes(drawing[:n])
                sessions = 0
            wall = time.perf_counter() - t0
        http.close()
        assert last.text.startswith(f"echo strokes:{count} ")
        print(f"{name:<34}{sum(sent) / 1024:>9.1f}{wall:>9.2f}{sessions:>10}")
        rows.append({"path": name, "kb": sum(sent) / 1024, "wall": wall, "sessions": sessions})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--strokes", type=int, default=40)
    args = parser.parse_args()
    measured_on = machine()
    with LocalServer(
        engine="echo", latency_base=args.latency, max_concurrency=args.concurrency
    ) as srv:
        batch = bench_batch(srv, args.images, args.concurrency, args.latency)
        srv.configure(latency_base=0.0)
        ink = bench_ink(srv, args.strokes)
    write(
        "api_extras",
        args=args,
        setup=(
            f"local server (echo engine), {args.latency:g} s per image, {args.concurrency} at "
            f"once, {args.images} images; ink: {args.strokes} strokes of 24 points, no latency"
        ),
        tables=[
            table(
                f"v3/batch vs v3/text per URL ({args.images} images)",
                [
                    column("path", "path"),
                    column("wall", "wall s", ".2f"),
                    column("x_floor", "× floor", ".2f"),
                    column("requests", "requests", "d"),
                ],
                batch,
            ),
            table(
                f"Ink: {args.strokes} strokes, read after each stroke",
                [
                    column("path", "path"),
                    column("kb", "KB sent", ",.1f"),
                    column("wall", "wall s", ".2f"),
                    column("sessions", "sessions", "d"),
                ],
                ink,
            ),
        ],
        machine_info=measured_on,
    )


if __name__ == "__main__":
    main()
