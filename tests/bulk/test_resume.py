"""A run killed mid-way (kill -9, Ctrl-C) and run again loses no row and sends nothing twice.

The run is the real CLI in a subprocess (``python -m mathpix_nb ocr``), talking to a local
server owned by the test over loopback HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mathpix_nb._journal import Journal
from mathpix_nb.server import Faults, LocalServer

from .test_bulk import echo_sha


def _cli(server: LocalServer, csv: Path, out: Path, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mathpix_nb",
        "ocr",
        str(csv),
        "--column",
        "p",
        "--out",
        str(out),
        "--journal",
        str(journal),
        "--concurrency",
        "4",
        "--poll-interval",
        "0.05",
        "--unknown-grace",
        "2",
        "--no-progress",
    ]


def _env(server: LocalServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MATHPIX_APP_ID=server.app_id, MATHPIX_APP_KEY=server.app_key, MATHPIX_URL=server.url)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_rerun_after_interruption_loses_nothing_and_duplicates_nothing(
    make_images, tmp_path: Path, sig: signal.Signals
) -> None:
    paths = make_images(300)
    csv = tmp_path / "in.csv"
    pd.DataFrame({"p": paths, "other": range(300)}).to_csv(csv, index=False)
    out, journal = tmp_path / "out.csv", tmp_path / "journal.sqlite3"
    # slow uploads (some in flight when the signal lands) and results that show up late
    faults = Faults(slow=0.5, slow_seconds=0.4, endpoints=("/v3/text",), seed=3)
    with LocalServer(engine="echo", faults=faults, async_delay=0.3) as server:
        proc = subprocess.Popen(
            _cli(server, csv, out, journal),
            env=_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if journal.exists():
                    with Journal(journal) as j:
                        if sum(j.counts().values()) >= 60:
                            break
                time.sleep(0.05)
            proc.send_signal(sig)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode != 0 and not out.exists()  # it really died mid-run
        with Journal(journal) as j:
            states = j.counts()
        assert 0 < sum(states.values()) < 300, states

        server.configure(faults=None)
        rerun = subprocess.run(
            _cli(server, csv, out, journal),
            env=_env(server),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        accepted = Counter(
            r.image_sha256 for r in server.log if r.endpoint == "/v3/text" and r.image_sha256
        )

    result = pd.read_csv(out)
    assert len(result) == 300 and result["ocr_error"].isna().all()
    assert list(result["other"]) == list(range(300))
    assert [t.split("sha:")[1] for t in result["ocr_text"]] == [echo_sha(p) for p in paths]
    # every image was processed by the server exactly once across both runs
    assert len(accepted) == 300 and set(accepted.values()) == {1}, Counter(accepted.values())
    assert "cached" in rerun.stderr  # the summary line


def test_keyboard_interrupt_in_process_cancels_cleanly_and_rerun_completes(make_images) -> None:
    """What a Jupyter "interrupt kernel" does: KeyboardInterrupt in the calling thread."""
    import _thread
    import threading

    from mathpix_nb.bulk import ocr_frame

    from .conftest import client_for

    paths = make_images(80)
    df = pd.DataFrame({"p": paths})
    with LocalServer(
        engine="echo",
        async_delay=0.2,
        faults=Faults(slow=0.3, slow_seconds=0.3, endpoints=("/v3/text",)),
    ) as server:
        client = client_for(server)
        timer = threading.Timer(0.8, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            ocr_frame(
                df,
                "p",
                client=client,
                concurrency=4,
                poll_interval=0.05,
                unknown_grace=2.0,
                progress=False,
            )
        timer.cancel()
        with Journal() as j:
            states = j.counts()
        assert 0 < sum(states.values()) < 80, states
        out = ocr_frame(
            df,
            "p",
            client=client,
            concurrency=4,
            poll_interval=0.05,
            unknown_grace=2.0,
            progress=False,
        )
        accepted = Counter(
            r.image_sha256 for r in server.log if r.endpoint == "/v3/text" and r.image_sha256
        )
    assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().tolist()
    assert len(accepted) == 80 and set(accepted.values()) == {1}
