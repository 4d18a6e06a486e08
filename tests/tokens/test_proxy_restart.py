"""The service killed in the middle of a bulk run: the rerun resumes, nothing is paid twice."""

from __future__ import annotations

import threading
import time

import pytest

from mathpix_nb.tokens import hash_secret

from .conftest import ALICE
from .proxy_support import free_port, start_python

pytestmark = pytest.mark.timeout(120)


def test_killed_mid_bulk_rerun_resumes_without_resending(tmp_path, monkeypatch) -> None:
    pd = pytest.importorskip("pandas")
    from PIL import Image, ImageDraw

    import mathpix_nb.pandas  # noqa: F401  (registers df.mathpix)
    from mathpix_nb.server import LocalServer

    paths = []
    for i in range(6):
        image = Image.new("RGB", (90 + 7 * i, 40), "white")
        ImageDraw.Draw(image).text((5, 10), f"y={i}", fill="black")
        path = tmp_path / f"row{i}.png"
        image.save(path)
        paths.append(str(path))
    df = pd.DataFrame({"image": paths})
    port = free_port()
    config = {
        "callers": {"alice": hash_secret(ALICE)},
        "proxy": True,
        "state_db": str(tmp_path / "state.sqlite3"),
    }
    with LocalServer(engine="echo", async_delay=2.5) as up:
        config["base_url"] = up.url
        service = start_python(up, tmp_path / "first.log", port=port, **config)
        monkeypatch.setenv("MATHPIX_PROXY_URL", service.url)
        monkeypatch.setenv("MATHPIX_PROXY_AUTH", ALICE)
        first: dict[str, object] = {}

        def run() -> None:
            first["out"] = df.mathpix.ocr("image", timeout=3, progress=False, poll_interval=0.2)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 20
        while sum(r.endpoint == "/v3/text" for r in up.log) < len(paths):
            assert time.monotonic() < deadline, "the bulk run did not submit its rows"
            time.sleep(0.05)
        service.kill()  # every row submitted, none collected yet
        worker.join(timeout=60)
        assert not worker.is_alive()
        out = first["out"]
        assert out["ocr_text"].isna().any()  # the first run could not finish

        restarted = start_python(up, tmp_path / "second.log", port=port, **config)
        try:
            again = df.mathpix.ocr("image", progress=False, poll_interval=0.2)
        finally:
            restarted.stop()
        assert again["ocr_text"].str.startswith("echo").all(), again.to_dict()
        sent = [r for r in up.log if r.endpoint == "/v3/text"]
        assert len(sent) == len(paths), "a row was sent (and paid for) twice"
