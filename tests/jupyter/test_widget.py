"""CropPanel driven from Python the way the browser drives it, against the echo server.

The echo engine answers "echo {W}x{H} sha:{12 hex}" for the image it received, so each test
can tell exactly which pixels reached the server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb.jupyter import CropPanel

from .conftest import Browser, make_png


def _state_text(widget: Any) -> str:
    """Everything a widget manager could save for this widget, as one string."""
    state = dict(widget.get_state())
    state.pop("_esm", None)
    state.pop("_css", None)
    return json.dumps(state, default=lambda v: f"<{type(v).__name__}>")


def test_load_from_path_sends_a_preview_by_message_not_state(
    panel: CropPanel, browser: Browser, png_path: Path
) -> None:
    panel.load(png_path)
    assert panel.image_name == "formula.png"
    assert panel.image_size == [240, 160]
    (header, preview), *_ = browser.images()
    assert header["width"] == 240 and header["height"] == 160
    assert preview.startswith(b"\x89PNG")
    # The pixels are not in the synced state (which notebooks save).
    text = _state_text(panel)
    assert base64.b64encode(png_path.read_bytes())[:40].decode() not in text
    assert "data:image" not in text and "iVBORw0KGgo" not in text


def test_view_asking_for_the_image_gets_it_again(panel: CropPanel, browser: Browser) -> None:
    panel.load(make_png())
    browser.received.clear()
    browser.send({"type": "ready"})  # a new view (or a reloaded page) renders
    assert len(browser.images()) == 1


def test_ocr_whole_image_sends_the_file_unchanged(
    panel: CropPanel, browser: Browser, png_bytes: bytes, local_server: Any
) -> None:
    panel.load(png_bytes, name="eq.png")
    browser.send({"type": "ocr"})
    sha = hashlib.sha256(png_bytes).hexdigest()[:12]
    assert panel.status == "done", panel.error
    assert panel.result.text == f"echo 240x160 sha:{sha}"
    assert panel.result_mmd == f"echo 240x160 sha:{sha}"
    assert panel.result_raw[0]["value"] == panel.result.text


def test_box_dragged_in_the_browser_is_the_box_sent(panel: CropPanel, browser: Browser) -> None:
    panel.load(make_png())
    browser.set(crop=[10, 20, 100, 50])
    browser.send({"type": "ocr"})
    assert panel.status == "done", panel.error
    assert panel.result.text.startswith("echo 100x50 ")
    assert panel.history[-1]["crop"] == [10, 20, 100, 50]
    assert "box 100×50 at (10, 20)" in panel.result_meta


def test_crop_is_cut_from_the_real_pixels_not_the_preview(
    panel: CropPanel, browser: Browser
) -> None:
    # 3000 px wide: the browser gets a 1600 px preview, the box is in real pixels.
    panel.load(make_png(3000, 400))
    (header, preview), *_ = browser.images()
    from PIL import Image

    assert Image.open(io.BytesIO(preview)).size[0] == 1600
    assert header["width"] == 3000
    browser.set(crop=[2000, 20, 900, 250])
    browser.send({"type": "ocr"})
    assert panel.status == "done", panel.error
    assert panel.result.text.startswith("echo 900x250 ")


def test_rotation_turns_the_image_and_box_coordinates_follow(
    panel: CropPanel, browser: Browser
) -> None:
    panel.load(make_png(240, 160))
    browser.set(rotation=90)
    browser.send({"type": "ocr"})
    assert panel.result.text.startswith("echo 160x240 ")
    # (0, 0, 150, 230) fits only in the turned image (160 wide, 240 high).
    browser.set(crop=[0, 0, 150, 230])
    browser.send({"type": "ocr"})
    assert panel.status == "done", panel.error
    assert panel.result.text.startswith("echo 150x230 ")


def test_rotating_forgets_the_old_box(panel: CropPanel, browser: Browser) -> None:
    panel.load(make_png())
    browser.set(crop=[1, 2, 30, 40])
    browser.set(rotation=270)
    assert panel.crop == []


def test_upload_paste_and_drop_arrive_as_buffers(
    panel: CropPanel, browser: Browser, png_bytes: bytes
) -> None:
    browser.send({"type": "upload", "name": "pasted.png", "mime": "image/png"}, [png_bytes])
    assert panel.image_name == "pasted.png"
    browser.send({"type": "ocr"})
    sha = hashlib.sha256(png_bytes).hexdigest()[:12]
    assert panel.result.text == f"echo 240x160 sha:{sha}"


def test_path_typed_in_the_panel_is_read_by_the_kernel(
    panel: CropPanel, browser: Browser, png_path: Path
) -> None:
    browser.send({"type": "load", "source": str(png_path)})
    assert panel.image_size == [240, 160]
    assert panel.error == ""


def test_load_from_url_is_downloaded_by_the_kernel(panel: CropPanel, local_server: Any) -> None:
    # The echo server has no image route; an unreachable URL must give a plain error.
    with pytest.raises(ValueError, match="Could not download"):
        panel.load(f"{local_server.url}/no-such-image.png")
    assert "Could not download" in panel.error
    assert panel.status == "error"


def test_formats_and_history_and_results(panel: CropPanel, browser: Browser) -> None:
    panel.load(make_png())
    browser.set(formats=["text", "latex_styled"])
    browser.send({"type": "ocr"})
    browser.set(crop=[0, 0, 50, 50])
    browser.send({"type": "ocr"})
    assert len(panel.results) == 2 and panel.result is panel.results[-1]
    assert [h["index"] for h in panel.history] == [0, 1]
    assert panel.history[0]["formats"] == ["text", "latex_styled"]
    # Clicking an older snip shows it again.
    browser.send({"type": "show", "index": 0})
    assert panel.selected == 0
    assert panel.result_mmd.count("240x160") == 1


def test_enter_or_button_without_an_image_says_what_to_do(
    panel: CropPanel, browser: Browser
) -> None:
    browser.send({"type": "ocr"})
    assert panel.status == "error"
    assert "Load an image first" in panel.error
    assert panel.results == []


def test_box_partly_outside_is_clipped_like_the_client_does(
    panel: CropPanel, browser: Browser
) -> None:
    panel.load(make_png(240, 160))
    browser.set(crop=[180, 60, 100, 100])
    browser.send({"type": "ocr"})
    assert panel.status == "done", panel.error
    assert panel.history[-1]["crop"] == [180, 60, 60, 100]  # clip_crop: one rule everywhere
    assert "60x100" in panel.result_mmd


def test_box_entirely_outside_the_image_is_refused_in_plain_words(
    panel: CropPanel, browser: Browser
) -> None:
    panel.load(make_png(240, 160))
    browser.set(crop=[300, 200, 50, 50])
    browser.send({"type": "ocr"})
    assert panel.status == "error"
    assert "outside the upright image" in panel.error and "(240x160)" in panel.error


def test_not_an_image_is_refused_in_plain_words(panel: CropPanel, browser: Browser) -> None:
    browser.send({"type": "upload", "name": "notes.txt"}, [b"hello, not pixels"])
    assert panel.status == "error"
    assert "notes.txt is not an image" in panel.error
    assert panel.image_name == ""


def test_missing_file_names_the_path(panel: CropPanel, browser: Browser) -> None:
    browser.send({"type": "load", "source": "nope/missing.png"})
    assert "nope/missing.png" in panel.error


def test_refused_credentials_are_reported_without_the_key(
    local_server: Any, png_bytes: bytes
) -> None:
    from mathpix_nb import Mathpix

    wrong_key = "wrong-key-" + "9" * 24
    with Mathpix(app_id=local_server.app_id, app_key=wrong_key, base_url=local_server.url) as bad:
        widget = CropPanel(png_bytes, client=bad)
        Browser(widget).send({"type": "ocr"})
    assert widget.status == "error"
    assert "credentials" in widget.error
    assert wrong_key not in widget.error and wrong_key not in _state_text(widget)


def test_server_down_is_reported_in_plain_words(png_bytes: bytes) -> None:
    from mathpix_nb import Mathpix
    from mathpix_nb.server import LocalServer

    with LocalServer(engine="echo") as server:
        url, app_id, app_key = server.url, server.app_id, server.app_key
    with Mathpix(app_id=app_id, app_key=app_key, base_url=url, max_retries=0) as gone:
        widget = CropPanel(png_bytes, client=gone)
        Browser(widget).send({"type": "ocr"})
    assert widget.status == "error"
    assert "Could not reach the OCR server" in widget.error


def test_region_choice_picks_the_client(local_server: Any, png_bytes: bytes) -> None:
    from mathpix_nb import Mathpix

    urls = dict(local_server.urls)
    auth = {"app_id": local_server.app_id, "app_key": local_server.app_key, "region_urls": urls}
    with Mathpix(region="global", **auth) as g, Mathpix(region="eu", **auth) as eu:
        widget = CropPanel(png_bytes, client={"global": g, "eu": eu})
        assert widget.regions == ["global", "eu"]
        local_server.clear_log()
        browser = Browser(widget)
        browser.set(region="eu")
        browser.send({"type": "ocr"})
    assert widget.status == "done", widget.error
    assert [r.region for r in local_server.log] == ["eu"]
    assert "region eu" in widget.result_meta


def test_state_never_holds_key_or_image_unless_asked(
    local_server: Any, client: Any, png_bytes: bytes
) -> None:
    widget = CropPanel(png_bytes, client=client)
    Browser(widget).send({"type": "ocr"})
    text = _state_text(widget)
    assert local_server.app_key not in text
    assert "data:image" not in text
    assert widget.kept_image == ""
    kept = CropPanel(png_bytes, client=client, keep_image=True)
    assert kept.kept_image.startswith("data:image/png;base64,")


def test_python_api_load_ocr_result(client: Any, png_path: Path) -> None:
    widget = CropPanel(png_path, client=client, formats=["text", "data"])
    widget.crop = [0, 0, 120, 80]
    result = widget.ocr()
    assert result is widget.result
    assert result.text.startswith("echo 120x80 ")
    assert "CropPanel(image='formula.png'" in repr(widget)


def test_bad_options_fail_at_construction(client: Any) -> None:
    with pytest.raises(ValueError, match="Unknown format"):
        CropPanel(client=client, formats=["text", "pdf"])
    with pytest.raises(ValueError, match="Unknown Mathpix region 'mars'"):
        CropPanel(client=client, region="mars")
    with pytest.raises(ValueError, match="Unknown Mathpix region 'mars'"):
        CropPanel(region="mars")
    panel = CropPanel(client={"global": client, "eu": client}, region="eu")
    assert panel.region == "eu"


def test_lazy_export_from_the_package() -> None:
    import mathpix_nb

    assert mathpix_nb.CropPanel is CropPanel


def test_every_ocr_request_passes_through_busy(panel: CropPanel, browser: Browser) -> None:
    """The page disables OCR on click and re-enables it on the next status change."""
    seen: list[str] = []
    panel.observe(lambda change: seen.append(change["new"]), names="status")
    browser.send({"type": "ocr"})
    browser.send({"type": "ocr"})  # the same error again must still be a change
    panel.load(make_png())
    browser.send({"type": "ocr"})
    assert seen == ["busy", "error", "busy", "error", "loading", "idle", "busy", "done"]


def test_ocr_from_python_raises_the_real_error(panel: CropPanel) -> None:
    with pytest.raises(ValueError, match="Load an image first"):
        panel.ocr()
    panel.load(make_png(240, 160))
    panel.crop = [250, 0, 999, 10]
    with pytest.raises(ValueError, match=r"outside the upright image.*\(240x160\)"):
        panel.ocr()


def test_url_typed_in_the_panel_is_downloaded_by_the_kernel_and_cropped(
    panel: CropPanel, browser: Browser, local_server: Any
) -> None:
    url = local_server.host_file(make_png(300, 200), name="hosted.png")
    browser.send({"type": "load", "source": url})
    assert panel.image_name.endswith("hosted.png") and panel.image_size == [300, 200]
    browser.set(crop=[5, 25, 120, 60])
    browser.send({"type": "ocr"})
    assert panel.result.text.startswith("echo 120x60 ")


def test_data_uri_can_be_loaded(panel: CropPanel) -> None:
    uri = "data:image/png;base64," + base64.b64encode(make_png(64, 32)).decode()
    panel.load(uri)
    assert panel.image_size == [64, 32]
