"""Pluggable engines (a custom Engine object, run off the event loop) and `mathpix-nb serve`."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from mathpix_nb.server import Engine, EngineError, LocalServer

from .conftest import data_uri, make_png


class SlowUpperEngine:
    """A blocking engine: sleeps in its thread, then answers with a fixed text."""

    name = "slow-upper"
    blocking = True

    def __init__(self) -> None:
        self.started = threading.Event()

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        self.started.set()
        time.sleep(1.0)
        return {
            "image_width": 1,
            "image_height": 1,
            "confidence": 0.5,
            "confidence_rate": 0.5,
            "version": "slow-1",
            "lines": [{"text": "HELLO", "confidence": 0.5, "cnt": [[0, 0]] * 4}],
        }

    def pdf_page_count(self, pdf: bytes) -> int:
        raise EngineError("pdf_encrypted", "no PDFs here")

    def recognize_pdf_page(self, pdf: bytes, page: int, options: Mapping[str, Any]) -> dict:
        raise AssertionError("never called")


def test_custom_engine_runs_off_the_event_loop():
    engine = SlowUpperEngine()
    assert isinstance(engine, Engine)
    with LocalServer(engine=engine) as srv:
        keys = srv.credentials()
        result: dict[str, Any] = {}

        def ocr() -> None:
            result.update(
                httpx.post(
                    srv.url + "/v3/text",
                    headers=keys,
                    timeout=30,
                    json={"src": data_uri(make_png())},
                ).json()
            )

        worker = threading.Thread(target=ocr)
        worker.start()
        assert engine.started.wait(10)
        # the engine is busy in its thread; the server still answers other requests
        assert httpx.get(srv.url + "/v3/ocr-results", headers=keys).status_code == 200
        assert worker.is_alive()
        worker.join(30)
        assert result["text"] == "HELLO" and result["version"] == "slow-1"
        pdf = httpx.post(
            srv.url + "/v3/pdf",
            headers=keys,
            files={"file": ("x.pdf", b"%PDF-1.4", "application/pdf")},
        ).json()
        deadline = time.monotonic() + 10
        while (status := httpx.get(f"{srv.url}/v3/pdf/{pdf['pdf_id']}", headers=keys).json())[
            "status"
        ] != "error":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status["error_info"]["id"] == "pdf_encrypted"


def test_engine_type_is_checked():
    with pytest.raises(TypeError, match="engine must be"):
        LocalServer(engine=object())


def test_serve_command_prints_url_and_credentials_and_stops_on_ctrl_c():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mathpix_nb",
            "serve",
            "--port",
            "0",
            "--region",
            "global",
            "--region",
            "eu",
            "--app-key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "server exited"
            lines.append(line.strip())
        urls = {
            parts[0]: parts[1]
            for parts in (line.split() for line in lines)
            if parts and parts[0] in ("global", "eu")
        }
        assert set(urls) == {"global", "eu"}
        assert "app_key cli-key" in lines
        r = httpx.post(
            urls["eu"] + "/v3/text",
            headers={"app_id": "local-app", "app_key": "cli-key"},
            json={"src": data_uri(make_png())},
        )
        assert r.json()["text"].startswith("echo 64x32")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_rejects_a_busy_port():
    with LocalServer() as srv:
        port = srv.url.rsplit(":", 1)[1]
        from mathpix_nb.server.cli import main

        assert main(["--port", port]) == 2


def test_serve_command_reports_bad_options(capsys):
    from mathpix_nb.server.cli import main

    assert main(["--port", "0", "--fault-5xx", "2"]) == 2
    assert "http_5xx" in capsys.readouterr().err


def test_server_restarts_after_stop():
    srv = LocalServer()
    for _ in range(2):
        with srv:
            assert httpx.get(srv.url + "/_local/health").json()["engine"] == "echo"
    assert "stopped" in repr(srv)
    with pytest.raises(RuntimeError, match="not started"):
        srv.url  # noqa: B018


def test_math_delimiters_follow_the_request():
    from mathpix_nb.server import EchoEngine

    class MathEngine(EchoEngine):
        def recognize(self, image, options):
            out = super().recognize(image, options)
            out["lines"][0]["text"] = "x \\( a^2 \\) and \\[ b \\]"
            return out

    with LocalServer(engine=MathEngine()) as srv:

        def text(**options: Any) -> str:
            return httpx.post(
                srv.url + "/v3/text",
                headers=srv.credentials(),
                json={"src": data_uri(make_png()), **options},
            ).json()["text"]

        assert text() == "x \\( a^2 \\) and \\[ b \\]"
        assert (
            text(math_inline_delimiters=["$", "$"], math_display_delimiters=["$$", "$$"])
            == "x $ a^2 $ and $$ b $$"
        )


def test_offline_reading_order_groups_rows():
    from mathpix_nb.server._engines import reading_order

    def line(text: str, x: int, y: int, h: int = 20) -> dict:
        return {"text": text, "cnt": [[x, y], [x + 50, y], [x + 50, y + h], [x, y + h]]}

    lines = [line("right", 300, 14), line("below", 10, 60), line("left", 10, 10, 24)]
    assert [li["text"] for li in reading_order(lines)] == ["left", "right", "below"]
