"""The proxy under test as a real process: start it, wait for /health, read its output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from mathpix_nb import Mathpix

SERVE = Path(__file__).with_name("_serve_proxy.py")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """A running service process; ``url``, ``pid``, ``output()``, ``rss_kb()``, ``stop()``."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._fh, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 20) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not come up:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")

    def rss_kb(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for {self.pid}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, as a crash or an OOM kill."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._fh.close()


def service_env(upstream: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATHPIX_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.update(MATHPIX_APP_ID=upstream.app_id, MATHPIX_APP_KEY=upstream.app_key, **extra)
    return env


def start_python(upstream: Any, log: Path, port: int = 0, **config: Any) -> ServiceProcess:
    """The service from ``create_app(**config)`` in its own process."""
    port = port or free_port()
    argv = [sys.executable, str(SERVE), json.dumps({**config, "port": port})]
    return ServiceProcess(argv, service_env(upstream), port, log).wait_ready()


def start_cli(upstream: Any, log: Path, *args: str, **env: str) -> ServiceProcess:
    """``mathpix-nb token-server --proxy ...`` in its own process."""
    port = free_port()
    argv = [sys.executable, "-m", "mathpix_nb", "token-server", "--port", str(port), *args]
    return ServiceProcess(argv, service_env(upstream, **env), port, log).wait_ready()


def env_client(monkeypatch: Any, url: str, secret: str, **options: Any) -> Mathpix:
    """A client configured only by MATHPIX_PROXY_URL + MATHPIX_PROXY_AUTH."""
    monkeypatch.setenv("MATHPIX_PROXY_URL", url)
    monkeypatch.setenv("MATHPIX_PROXY_AUTH", secret)
    client = Mathpix(**options)
    assert client.auth_mode == "proxy"
    return client
