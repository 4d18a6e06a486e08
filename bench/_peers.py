"""The pieces of ``bench/bulk.py``: corpora, the counting server, the runners (ours and peers).

Two child-process entry points, so that no runner shares an interpreter (GIL, RSS) with the
server or with another runner:

* ``python bench/_peers.py serve --cap 8 --latency-base 0.25 --latency-per-kb 0.005``: the
  local server (echo engine) behind an ASGI wrapper that counts HTTP body bytes up and down per
  endpoint kind, the bytes of each distinct result served by ``v3/ocr-results`` (what the
  poll bytes are compared with) and the latency model's work (the floor). It prints its URL,
  answers ``GET /_bench/counters``, and stops when its stdin closes.
* ``python bench/_peers.py run RUNNER URL CAP LIST.json OUT.json``: one runner over the files
  listed; writes wall time, client CPU, peak RSS growth and rows answered.

The runners are best efforts, not strawmen: ``gather_raw`` and ``gather_prepared`` are the
30-line ``asyncio.gather`` + semaphore over httpx a competent user writes (the files as they
are, or our public ``prepare_image`` bytes, prepared off the event loop); ``mpxpy`` is the
official client's synchronous call in a pool of 16 threads; ``ours`` is ``df.mathpix.ocr``.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

APP_ID, APP_KEY = "local-app", "bench-key"
OPTIONS = {"formats": ["text", "latex_styled"]}  # what ours asks for by default
RETRY_STATUS = {429, 500, 502, 503, 504}

# ------------------------------------------------------------------------------- corpora


def _jpeg_variant(data: bytes, tag: bytes) -> bytes:
    """The same JPEG with a comment segment (after the EXIF block): new bytes, same pixels."""
    pos = 2
    if data[2:4] == b"\xff\xe1":  # keep EXIF (APP1) first, where cameras put it
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[pos:]


def _png_variant(data: bytes, tag: bytes) -> bytes:
    """The same PNG with a tEXt chunk after IHDR: new bytes, same pixels."""
    body = b"Comment\x00" + tag
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]


def variant(data: bytes, i: int) -> bytes:
    tag = f"bench copy {i}".encode()
    return _jpeg_variant(data, tag) if data[:2] == b"\xff\xd8" else _png_variant(data, tag)


def _bases(kind: str, cache: Path) -> list[tuple[str, bytes]]:
    """A few distinct base images per corpus (slow to draw, so cached on disk)."""
    folder = cache / kind
    if folder.is_dir() and any(folder.iterdir()):
        return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    from legibility import as_png, render_page, scan_of
    from upload import PAGE, phone_photo, screenshot_line_art, screenshot_text

    out: list[tuple[str, bytes]] = []
    if kind == "photos":  # 12 MP, stored sideways or upside down with EXIF orientation
        for seed, orientation in ((1, 6), (2, 8), (3, 3)):
            out.append((f"photo{seed}.jpg", phone_photo(seed, orientation, PAGE)))
    elif kind == "a4":  # 300 dpi: a clean render (PNG) and a grayscale scan (PNG)
        for seed in (1, 2):
            page, _ = render_page(seed)
            out.append((f"a4_render{seed}.png", as_png(page)))
            out.append((f"a4_scan_gray{seed}.png", as_png(scan_of(page, seed).convert("L"))))
    elif kind == "screenshots":
        notes = [
            "Screenshot of lecture notes",
            "The derivative of sin x is cos x",
            "Integrate by parts when a product appears",
            "Remember the constant of integration",
        ]
        out.append(("shot_notes.png", screenshot_text(2560, 1440, notes, 56)))
        out.append(("shot_small.png", screenshot_text(1200, 500, notes[:2], 40)))
        out.append(("shot_fullhd.png", screenshot_text(1920, 1080, notes[1:], 44)))
        out.append(("shot_plot.png", screenshot_line_art(1920, 1080, ["Figure 2 damped"])))
    else:
        raise ValueError(f"unknown corpus {kind!r}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in out:
        (folder / name).write_bytes(data)
    return out


def tiny_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    """Distinct noisy grayscale JPEGs, 80-260 px (about 5-40 KB), like cropped formulas."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(start)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        w, h = int(rng.integers(80, 260)), int(rng.integers(60, 160))
        arr = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        p = folder / f"tiny{i:06d}.jpg"
        Image.fromarray(arr, "L").save(p, format="JPEG", quality=80)
        paths.append(p)
    return paths


def make_corpus(kind: str, folder: Path, n: int, cache: Path, start: int = 0) -> list[Path]:
    """``n`` distinct files of corpus ``kind`` in ``folder`` (every file's bytes differ)."""
    if kind == "tiny":
        return tiny_images(folder, n, start)
    bases = _bases(kind, cache)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        name, data = bases[i % len(bases)]
        p = folder / f"{i:05d}_{name}"
        p.write_bytes(variant(data, i))
        paths.append(p)
    return paths


# ---------------------------------------------------------------------- counting server


def _new_counters() -> dict[str, Any]:
    kinds = ("upload", "poll", "other")
    return {
        **{k: {"requests": 0, "up": 0, "down": 0} for k in kinds},
        "result_bytes": 0,  # distinct results served by v3/ocr-results, once each
        "results_seen": 0,
        "work": 0.0,  # sum of the latency model's delays (seconds)
        "max_delay": 0.0,
        "engine_calls": 0,
    }


class _Counting:
    """ASGI wrapper: counts body bytes per kind of request; serves ``/_bench/counters``."""

    def __init__(self, app: Any, counters: dict[str, Any], seen: set[str], extra: Any) -> None:
        self.app, self.c, self.seen, self.extra = app, counters, seen, extra

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/_bench/counters":
            body = json.dumps({**self.c, **self.extra()}).encode()
            head = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return None
        if path in ("/v3/text", "/v3/latex") and scope["method"] == "POST":
            kind = "upload"
        elif path.startswith("/v3/ocr-results"):
            kind = "poll"
        else:
            kind = "other"
        c = self.c[kind]
        c["requests"] += 1
        parts: list[bytes] | None = [] if kind == "poll" else None

        async def counted_receive() -> Any:
            msg = await receive()
            if msg["type"] == "http.request":
                c["up"] += len(msg.get("body", b""))
            return msg

        async def counted_send(msg: Any) -> None:
            if msg["type"] == "http.response.body":
                chunk = msg.get("body", b"")
                c["down"] += len(chunk)
                if parts is not None:
                    parts.append(chunk)
            await send(msg)

        await self.app(scope, counted_receive, counted_send)
        if parts:
            self._count_results(b"".join(parts))
        return None

    def _count_results(self, body: bytes) -> None:
        try:
            items = json.loads(body).get("ocr_results") or []
        except ValueError:
            return
        for item in items:
            rid = item.get("image_id") or item.get("request_id")
            if rid and rid not in self.seen and item.get("result") is not None:
                self.seen.add(rid)
                self.c["results_seen"] += 1
                self.c["result_bytes"] += len(
                    json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
                )


def serve(argv: list[str]) -> int:
    import argparse

    from mathpix_nb.server import LocalServer, _core, _local

    ap = argparse.ArgumentParser()
    ap.add_argument("--cap", type=int, default=None)
    ap.add_argument("--latency-base", type=float, default=0.0)
    ap.add_argument("--latency-per-kb", type=float, default=0.0)
    args = ap.parse_args(argv)
    counters = _new_counters()
    seen: set[str] = set()
    holder: list[LocalServer] = []

    def extra() -> dict[str, Any]:
        stats = holder[0].stats()
        return {"paid_images": stats["images"], "peak_in_flight": stats["peak_in_flight"]}

    original_run_engine = _core.ServerState.run_engine

    async def run_engine(self: Any, fn: Any, *a: Any, upload_bytes: int) -> Any:
        cfg = self.config
        delay = cfg.latency_base + cfg.latency_per_kb * upload_bytes / 1024
        counters["work"] += delay
        counters["max_delay"] = max(counters["max_delay"], delay)
        counters["engine_calls"] += 1
        return await original_run_engine(self, fn, *a, upload_bytes=upload_bytes)

    _core.ServerState.run_engine = run_engine  # type: ignore[method-assign]
    original_build = _local.build_app
    _local.build_app = lambda state, region: _Counting(  # type: ignore[assignment]
        original_build(state, region), counters, seen, extra
    )
    server = LocalServer(
        engine="echo",
        app_id=APP_ID,
        app_key=APP_KEY,
        latency_base=args.latency_base,
        latency_per_kb=args.latency_per_kb,
        max_concurrency=args.cap or None,
    )
    holder.append(server)
    with server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the bench closes our stdin
    return 0


# --------------------------------------------------------------------------- the runners


def _status(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes. Not ``ru_maxrss``: Linux keeps that
    across fork + exec, so a child would report the bench parent's peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) from the current RSS, so it measures the run, not the imports."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _content_type(path: Path) -> str:
    return "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"


async def _gather(
    url: str, paths: list[Path], cap: int, payload: Callable[[Path], Awaitable[tuple[bytes, str]]]
) -> list[dict[str, Any]]:
    """What a competent user writes: gather + a semaphore, one pooled client, retries."""
    import httpx

    sem = asyncio.Semaphore(cap)
    headers = {"app_id": APP_ID, "app_key": APP_KEY}
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    options = json.dumps(OPTIONS)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=limits) as http:

        async def one(path: Path) -> dict[str, Any]:
            async with sem:
                data, content_type = await payload(path)
                for attempt in range(6):
                    try:
                        r = await http.post(
                            "/v3/text",
                            files={"file": (path.name, data, content_type)},
                            data={"options_json": options},
                        )
                    except httpx.TransportError as exc:
                        error: dict[str, Any] = {"error": repr(exc)}
                    else:
                        if r.status_code not in RETRY_STATUS:
                            return dict(r.json())
                        error = {"error": f"HTTP {r.status_code}"}
                    await asyncio.sleep(min(0.5 * 2**attempt, 8))
                return error

        return await asyncio.gather(*(one(p) for p in paths))


def run_gather_raw(url: str, paths: list[Path], cap: int) -> int:
    async def raw(path: Path) -> tuple[bytes, str]:
        return path.read_bytes(), _content_type(path)

    results = asyncio.run(_gather(url, paths, cap, raw))
    return sum(1 for r in results if "text" in r and "error" not in r)


def run_gather_prepared(url: str, paths: list[Path], cap: int) -> int:
    from mathpix_nb import prepare_image

    async def prepared(path: Path) -> tuple[bytes, str]:
        image = await asyncio.to_thread(prepare_image, path)  # Pillow releases the GIL
        return image.data, image.content_type

    results = asyncio.run(_gather(url, paths, cap, prepared))
    return sum(1 for r in results if "text" in r and "error" not in r)


def run_mpxpy(url: str, paths: list[Path], cap: int) -> int:
    """mpxpy used well: its synchronous ``image_new`` in a pool of 16 threads."""
    from concurrent.futures import ThreadPoolExecutor

    from mpxpy.mathpix_client import MathpixClient

    client = MathpixClient(app_id=APP_ID, app_key=APP_KEY, api_url=url)

    def one(path: Path) -> bool:
        try:
            image = client.image_new(file_path=str(path), formats=OPTIONS["formats"])
        except Exception:  # mpxpy raises ValueError / its own errors for HTTP failures
            return False
        return "text" in image.result and "error" not in image.result

    with ThreadPoolExecutor(max_workers=16) as pool:
        return sum(pool.map(one, paths))


def run_ours(url: str, paths: list[Path], cap: int, journal: str = "", poll: float = 0) -> int:
    import pandas as pd

    import mathpix_nb.pandas  # noqa: F401  (registers df.mathpix)
    from mathpix_nb import Mathpix

    client = Mathpix(APP_ID, APP_KEY, base_url=url)
    df = pd.DataFrame({"image_path": [str(p) for p in paths]})
    kwargs: dict[str, Any] = {"concurrency": cap, "progress": False}
    if journal:
        kwargs["journal"] = journal
    if poll:
        kwargs["poll_interval"] = poll
    out = df.mathpix.ocr("image_path", client=client, **kwargs)
    return int(out["ocr_error"].isna().sum())


RUNNERS: dict[str, Callable[..., int]] = {
    "gather_raw": run_gather_raw,
    "gather_prepared": run_gather_prepared,
    "mpxpy": run_mpxpy,
    "ours": run_ours,
}


def run(argv: list[str]) -> int:
    """``run RUNNER URL CAP LIST.json OUT.json [JOURNAL] [POLL]``: one measured run."""
    name, url, cap, list_file, out_file = argv[:5]
    extra: dict[str, Any] = {}
    if name == "ours":
        journal = argv[5] if len(argv) > 5 else ""
        extra = {"journal": journal, "poll": float(argv[6]) if len(argv) > 6 else 0.0}
    paths = [Path(p) for p in json.loads(Path(list_file).read_text())]
    # every import a runner needs, before the clock starts
    import httpx  # noqa: F401
    import pandas  # noqa: F401

    import mathpix_nb.bulk
    import mathpix_nb.pandas  # noqa: F401

    if name == "mpxpy":
        import mpxpy.mathpix_client  # noqa: F401
    reset_peak_rss()
    base_rss = _status("VmRSS")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    ok = RUNNERS[name](url, paths, int(cap), **extra)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = _status("VmHWM")
    result = {"wall": wall, "cpu": cpu, "ok": ok, "n": len(paths)}
    result.update(base_rss=base_rss, peak_rss=peak, rss_growth=max(peak - base_rss, 0))
    Path(out_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    command, rest = sys.argv[1], sys.argv[2:]
    raise SystemExit(serve(rest) if command == "serve" else run(rest))
