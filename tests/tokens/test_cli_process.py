"""`mathpix-nb token-server` as a real process: key from the environment, callers file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from mathpix_nb.tokens import hash_secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_token_server_command_serves_tokens(http, upstream, tmp_path) -> None:
    secret = "carol-secret-0123456789abcdef"
    callers = tmp_path / "callers"
    callers.write_text(f"carol {hash_secret(secret)}\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATHPIX_")}
    env.update(
        MATHPIX_APP_ID=upstream.app_id,
        MATHPIX_APP_KEY=upstream.app_key,
        MATHPIX_URL=upstream.urls["global"],
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mathpix_nb",
            "token-server",
            "--port",
            str(port),
            "--callers-file",
            str(callers),
            "--expires",
            "60",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the token server exited early"
            assert time.monotonic() < deadline, "the token server did not come up"
            time.sleep(0.1)
        ok = http.post(f"{url}/token", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json()["app_token"].startswith("token_")
        assert http.post(f"{url}/token").status_code == 401
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert "issued app token caller=carol" in output
    assert upstream.app_key not in output
    assert ok.json()["app_token"] not in output
