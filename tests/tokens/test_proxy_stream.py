"""Streaming through the proxy process: a 50 MB PDF with the service's memory bounded, the
size limit checked while the body streams, and v3/pdf/{id}/stream passed on unbuffered."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from mathpix_nb.tokens import hash_secret

from .conftest import ALICE, BOB
from .proxy_support import start_cli

pytestmark = pytest.mark.timeout(120)
MB = 1024 * 1024


@pytest.fixture
def cli_proxy(upstream, tmp_path):
    callers = tmp_path / "callers"
    callers.write_text(f"alice {hash_secret(ALICE)}\nbob {hash_secret(BOB)}\n")
    service = start_cli(
        upstream,
        tmp_path / "svc.log",
        "--proxy",
        "--callers-file",
        str(callers),
        "--max-pdf-mb",
        "60",
        "--state-db",
        str(tmp_path / "state.sqlite3"),
        MATHPIX_URL=upstream.urls["global"],
    )
    yield service
    service.stop()


def test_50mb_pdf_streams_with_bounded_memory(cli_proxy, upstream, pdf_bytes, tmp_path) -> None:
    big = tmp_path / "big.pdf"
    with big.open("wb") as fh:
        fh.write(pdf_bytes)
        block = b"%" + b"x" * (MB - 2) + b"\n"
        for _ in range(50):
            fh.write(block)
    auth = {"Authorization": f"Bearer {ALICE}"}
    with httpx.Client(base_url=cli_proxy.url, headers=auth, timeout=60) as http:
        # warm up (imports, pools), then measure the peak from here on
        assert http.get("/v3/pdf-results").status_code == 200
        baseline = cli_proxy.rss_kb("VmRSS")
        with big.open("rb") as fh:
            answer = http.post("/v3/pdf", files={"file": ("big.pdf", fh, "application/pdf")})
        assert answer.status_code == 200, answer.text
        pdf_id = answer.json()["pdf_id"]
        peak = cli_proxy.rss_kb("VmHWM")
    record = [r for r in upstream.log if r.endpoint == "/v3/pdf"][-1]
    assert record.bytes_received > 50 * MB  # all of it reached the upstream
    grown_mb = (peak - baseline) / 1024
    print(f"service RSS: baseline {baseline / 1024:.1f} MB, peak {peak / 1024:.1f} MB")
    assert grown_mb < 20, f"the service grew by {grown_mb:.1f} MB for a 50 MB upload"
    assert f"id={pdf_id}" in cli_proxy.output()


def test_size_limit_is_checked_while_streaming(cli_proxy) -> None:
    auth = {"Authorization": f"Bearer {ALICE}"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must be found mid-stream
        yield b"%PDF-1.4\n"
        for _ in range(70):
            yield b"%" * MB

    with httpx.Client(base_url=cli_proxy.url, headers=auth, timeout=60) as http:
        # a declared length over the limit is refused before any of the body is read
        with socket.create_connection(("127.0.0.1", cli_proxy.port), timeout=10) as sock:
            sock.sendall(
                f"POST /v3/pdf HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n"
                f"Content-Type: application/pdf\r\nContent-Length: {70 * MB}\r\n\r\n%PDF".encode()
            )
            head = sock.recv(4096).decode(errors="replace")
        assert head.startswith("HTTP/1.1 413"), head[:80]
        try:
            streamed = http.post(
                "/v3/pdf", content=chunks(), headers={"content-type": "application/pdf"}
            )
        except httpx.TransportError:
            pass  # the service may close the connection while we are still sending
        else:
            assert streamed.status_code == 413
            assert streamed.json()["error_info"]["id"] == "sys_request_too_large"
        assert http.get("/health").status_code == 200


def test_pdf_stream_is_relayed_unbuffered(tmp_path, pdf_bytes) -> None:
    from mathpix_nb.server import LocalServer

    from .proxy_support import start_python

    with LocalServer(engine="echo", latency_base=0.6) as up:
        service = start_python(
            up,
            tmp_path / "svc.log",
            base_url=up.url,
            callers={"alice": hash_secret(ALICE)},
            proxy=True,
        )
        try:
            auth = {"Authorization": f"Bearer {ALICE}"}
            with httpx.Client(base_url=service.url, headers=auth, timeout=30) as http:
                pdf_id = http.post(
                    "/v3/pdf",
                    files={"file": ("a.pdf", pdf_bytes, "application/pdf")},
                    data={"options_json": json.dumps({"streaming": True})},
                ).json()["pdf_id"]
                arrivals: list[float] = []
                pages: list[int] = []
                start = time.monotonic()
                with http.stream(
                    "GET", f"/v3/pdf/{pdf_id}/stream", headers={"Accept": "text/event-stream"}
                ) as stream:
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    for line in stream.iter_lines():
                        if line.startswith("data:"):
                            arrivals.append(time.monotonic() - start)
                            pages.append(json.loads(line[5:])["page_idx"])
            assert sorted(pages) == [1, 2]
            # the first page reached us while the second was still being read upstream
            assert arrivals[1] - arrivals[0] > 0.3, arrivals
        finally:
            service.stop()
