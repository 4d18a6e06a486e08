"""Run notebooks/crop_panel.ipynb with nbclient and check what the saved file keeps.

nbclient stores widget state in ``metadata.widgets`` exactly as a widget manager does (every
synced trait, plus binary buffers); the saved file must hold no credential, no token and no
image bytes, while the results themselves are kept.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "crop_panel.ipynb"

pytestmark = pytest.mark.slow


def _execute(tmp_path: Path, timeout: int = 120) -> tuple[Any, str]:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    saved = work / "saved.ipynb"
    nbformat.write(nb, saved)
    return nb, saved.read_text()


def _assert_no_image_bytes(text: str, image: bytes) -> None:
    assert "data:image" not in text
    assert "iVBORw0KGgo" not in text  # base64 of the PNG signature
    assert "/9j/" not in text  # base64 of the JPEG signature
    assert base64.b64encode(image[100:160]).decode()[:40] not in text
    assert '"buffers"' not in text


def test_saved_notebook_keeps_results_but_no_key_token_or_image(
    tmp_path: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Credentials" in the environment, as a user sets them; they point at the echo server.
    monkeypatch.setenv("MATHPIX_URL", local_server.url)
    monkeypatch.setenv("MATHPIX_APP_ID", local_server.app_id)
    monkeypatch.setenv("MATHPIX_APP_KEY", local_server.app_key)
    local_server.clear_log()
    nb, text = _execute(tmp_path)

    # It really ran against the server: panel OCR, %mathpix and %%mathpix.
    assert len(local_server.log) == 3
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells])
    assert "echo 900x140 sha:" in outputs  # panel.ocr() of the box
    assert "echo 900x120 sha:" in outputs  # %mathpix --crop
    assert "echo 900x260 sha:" in outputs  # %%mathpix, whole image
    assert "Traceback" not in outputs and '"output_type": "error"' not in outputs

    # The widget state is saved (so the check below looks at real state)...
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    panels = [s["state"] for s in states.values() if s["state"].get("_model_name") == "AnyModel"]
    assert panels and any("echo 900x140" in p.get("result_mmd", "") for p in panels)
    # ...and holds no secret and no pixels.
    assert local_server.app_key not in text
    image = (tmp_path / "work" / "mathpix_sample.png").read_bytes()
    _assert_no_image_bytes(text, image)


@pytest.mark.timeout(300)
def test_new_user_without_credentials_gets_the_offline_engine(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr")
    nb, text = _execute(tmp_path, timeout=240)
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells])
    assert '"output_type": "error"' not in outputs
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    panels = [s["state"] for s in states.values() if s["state"].get("_model_name") == "AnyModel"]
    assert panels[0]["offline"] is True
    assert "Offline engine" in panels[0]["engine_note"]
    # The offline engine really read the second line of the sample.
    assert "12" in panels[0]["result_mmd"]
    image = (tmp_path / "work" / "mathpix_sample.png").read_bytes()
    _assert_no_image_bytes(text, image)
