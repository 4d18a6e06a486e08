"""Request bodies are read as streams and reading stops at the limit; JSON nesting is
bounded. The memory test runs ``mathpix-nb serve`` in a subprocess so its RSS is its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mathpix_nb.server import LocalServer

from .conftest import data_uri, echo_text, make_png

MB = 1024 * 1024


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@pytest.fixture
def served() -> Iterator[tuple[str, dict[str, str], int]]:
    """(url, keys, pid) of ``mathpix-nb serve`` in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mathpix_nb", "serve", "--port", "0", "--app-key", "mem-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "server exited"
            if line.split()[:1] == ["global"]:
                url = line.split()[1]
            if line.startswith("Press Ctrl-C"):
                break
        assert url is not None
        yield url, {"app_id": "local-app", "app_key": "mem-key"}, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"\0" * size
    for _ in range(total // size):
        yield block


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_500_mb_post_is_refused_without_buffering_it(served):
    url, keys, pid = served
    with httpx.Client(base_url=url, timeout=60) as http:
        # warm up: the first requests load the code paths (and their memory) once
        for mark in range(3):
            http.post("/v3/text", headers=keys, json={"src": data_uri(make_png(mark=mark))})
        before = _rss_kb(pid)
        # streamed (chunked, no Content-Length), as a client uploading from a pipe sends it
        r = http.post(
            "/v3/text",
            headers={**keys, "Content-Type": "application/json"},
            content=_chunks(500 * MB),
        )
        assert r.status_code == 200
        body = r.json()
        assert body["error_info"]["id"] == "sys_request_too_large" and body["request_id"]
        # declared length: refused before anything is read
        r = http.post(
            "/v3/text",
            headers={**keys, "Content-Type": "application/json", "Content-Length": str(200 * MB)},
            content=_chunks(200 * MB),
        )
        assert r.json()["error_info"]["id"] == "sys_request_too_large"
        grown_mb = (_rss_kb(pid) - before) / 1024
        assert grown_mb < 12, f"RSS grew by {grown_mb:.1f} MB for 700 MB of refused bodies"
        # the same connection still serves normal requests
        png = make_png(mark=9)
        assert http.post("/v3/text", headers=keys, json={"src": data_uri(png)}).json()[
            "text"
        ] == echo_text(png)


def test_limit_status_and_per_route_limits(png):
    with (
        LocalServer(too_large_status=413, max_body_bytes=64 * 1024) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        keys = srv.credentials()
        big = {"src": data_uri(make_png(600, 600, mark=3)), "pad": "x" * 70_000}
        r = http.post("/v3/text", headers=keys, json=big)
        assert r.status_code == 413
        assert r.json()["error_info"]["id"] == "sys_request_too_large"
        # a PDF route has its own (1 GB) limit: 70 KB is fine there
        pdf = http.post(
            "/v3/pdf", headers=keys, files={"file": ("a.pdf", b"%PDF-1.4\n" + b"0" * 70_000)}
        )
        assert "pdf_id" in pdf.json()
        assert http.post("/v3/text", headers=keys, json={"src": data_uri(png)}).json()["text"]
        record = next(r for r in srv.log if r.status_code == 413)
        assert record.error_id == "sys_request_too_large" and record.bytes_received == 0


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [50_000, 100])
def test_deeply_nested_options_get_a_json_error_envelope(server, http, keys, png, depth):
    files = {"file": ("a.png", png, "image/png")}
    r = http.post("/v3/text", headers=keys, files=files, data={"options_json": _deep(depth)})
    assert r.status_code == 200
    assert r.json()["error_info"]["id"] == "json_syntax" and r.json()["request_id"]
    for path in ("/v3/text", "/v3/batch", "/v3/app-tokens", "/v3/converter", "/v3/pdf"):
        r = http.post(
            path, headers={**keys, "Content-Type": "application/json"}, content=_deep(depth)
        )
        assert r.status_code == 200, path
        assert r.json()["error_info"]["id"] == "json_syntax", path
    # lists nest too
    deep_list = json.dumps({"metadata": {"x": []}}).replace("[]", "[" * depth + "]" * depth)
    r = http.post(
        "/v3/text", headers={**keys, "Content-Type": "application/json"}, content=deep_list
    )
    assert r.json()["error_info"]["id"] == "json_syntax"


def test_ordinary_nesting_is_fine(server, http, keys, png):
    options = {"src": data_uri(png), "metadata": {"a": {"b": {"c": [1, [2, [3]]]}}}}
    assert http.post("/v3/text", headers=keys, json=options).json()["text"] == echo_text(png)
