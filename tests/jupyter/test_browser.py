"""The crop panel in a real JupyterLab, driven in headless Debian Chromium by Playwright.

An image is uploaded through the panel's file input, a box is dragged on the canvas (on a
HiDPI page, with the image scaled to fit), OCR is clicked, and the rendered answer of the
local echo server — which names the size of the image it received — must show the size of
the box the panel displays. A screenshot is kept in artifacts/. See shared/browser-testing.md
for the flags and the kernel-readiness wait used here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ._browser import ARTIFACTS, MARKS, Jupyter, browser_page, run_notebook
from ._browser import screenshot as keep
from .conftest import make_png

pytestmark = MARKS

SETUP_CELL = """\
from mathpix_nb import Mathpix
from mathpix_nb.jupyter import CropPanel
from mathpix_nb.server import EchoEngine, LocalServer


class MathEcho(EchoEngine):
    \"\"\"The echo engine plus one formula, so the page has math to draw.\"\"\"

    def recognize(self, image, options):
        out = super().recognize(image, options)
        for line in out["lines"]:
            line["text"] += r" with \\( \\frac{a}{b} \\)"
        return out


# A local Mathpix-compatible server: nothing leaves this machine.
# Two regions, and a little latency so the busy state can be seen.
server = LocalServer(engine=MathEcho(), regions=("global", "eu"), latency_base=0.5).start()
auth = dict(app_id=server.app_id, app_key=server.app_key, region_urls=server.urls)
clients = {"global": Mathpix(region="global", **auth), "eu": Mathpix(region="eu", **auth)}
"""
PANEL_CELL = "panel = CropPanel(client=clients)\npanel"


WHOLE_IMAGE_IS = """(expected) => {
  const node = document.querySelector('.mpx-selection');
  return !!node && node.dataset.crop === expected;
}"""

# A file dropped on the picture, or pasted while the panel has focus, as the browser fires it.
DROP_AND_PASTE = """([how, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], how + '.png', { type: 'image/png' }));
  if (how === 'drop') {
    const stage = document.querySelector('.mpx-stage');
    stage.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true }));
    stage.dispatchEvent(
      new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  } else {
    const panel = document.querySelector('.mpx-panel');
    panel.focus();
    panel.dispatchEvent(
      new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }
}"""


DROP_BIG_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(12 * 2 ** 20)], 'huge.png', { type: 'image/png' }));
  document.querySelector('.mpx-stage').dispatchEvent(
    new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
}"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.timeout(300)
def test_drag_a_box_and_ocr_in_jupyterlab(jupyterlab: Jupyter, tmp_path: Path) -> None:
    root = jupyterlab.root
    # Wider than the panel, so the picture is scaled to fit; the page is HiDPI (2x).
    image = tmp_path / "wide.png"
    image.write_bytes(make_png(1800, 500))
    shot = ARTIFACTS / "crop_panel_jupyterlab.png"

    permissions = ["clipboard-read", "clipboard-write"]
    with browser_page(1280, 1000, scale=2, permissions=permissions) as page:
        run_notebook(page, jupyterlab, "panel.ipynb", [SETUP_CELL, PANEL_CELL])
        panel = page.locator(".mpx-panel")
        panel.wait_for(state="visible", timeout=90_000)
        assert "Local server at http://127.0.0.1" in panel.locator(".mpx-note").inner_text()

        page.set_input_files(".mpx-file", str(image))
        canvas = page.locator(".mpx-canvas")
        canvas.wait_for(state="visible")
        page.wait_for_function(
            "() => (document.querySelector('.mpx-selection')?.dataset.crop || '')"
            " === '0,0,1800,500'"
        )
        box = canvas.bounding_box()
        assert box is not None and box["width"] < 1800  # scaled to fit
        x0, y0 = box["x"] + box["width"] * 0.10, box["y"] + box["height"] * 0.15
        x1, y1 = box["x"] + box["width"] * 0.60, box["y"] + box["height"] * 0.70
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=8)
        page.mouse.up()

        data_crop = page.locator(".mpx-selection").get_attribute("data-crop") or ""
        crop = [int(v) for v in data_crop.split(",")]
        x, y, w, h = crop
        # The box in real pixels is the dragged fraction of the 1800x500 image.
        assert abs(x - 180) <= 3 and abs(y - 75) <= 3, crop
        assert abs(w - 900) <= 4 and abs(h - 275) <= 4, crop

        page.locator(".mpx-ocr").click()
        # Busy while the kernel waits for the server: the button says so and is disabled.
        page.locator(".mpx-panel.mpx-busy").wait_for(timeout=30_000)
        assert page.locator(".mpx-ocr").is_disabled()
        rendered = page.locator(".mpx-rendered")
        rendered.filter(has_text=f"echo {w}x{h} sha:").wait_for(timeout=60_000)
        assert page.locator(".mpx-ocr").is_enabled()
        meta = page.locator(".mpx-meta").inner_text()
        assert f"box {w}×{h} at ({x}, {y})" in meta and "region global" in meta
        raw = page.locator(".mpx-raw[data-format=text] .mpx-raw-text").inner_text()
        assert raw.startswith(f"echo {w}x{h} sha:")
        assert "\\frac{a}{b}" in raw  # the raw Mathpix Markdown keeps the TeX
        # ...and the rendered side draws it with Mathpix's renderer (MathJax SVG), not TeX.
        rendered.locator("[data-rendered=mathpix]").or_(
            page.locator(".mpx-rendered[data-rendered=mathpix]")
        ).first.wait_for(timeout=30_000)
        math = rendered.locator("mjx-container svg")
        assert math.count() == 1
        math_box = math.bounding_box()
        assert math_box is not None and math_box["height"] > 10
        assert "\\frac" not in rendered.inner_text()
        assert page.locator(".mpx-error").is_hidden()
        assert page.locator(".mpx-history-item").count() == 1
        # The copy button puts the raw Mathpix Markdown on the clipboard.
        copy = page.locator(".mpx-raw[data-format=text] .mpx-copy")
        copy.click()
        page.wait_for_function(
            "() => document.querySelector('.mpx-raw[data-format=text] .mpx-copy')"
            ".textContent === 'Copied'"
        )
        assert page.evaluate("() => navigator.clipboard.readText()") == raw
        panel.scroll_into_view_if_needed()
        keep(panel, shot.name, docs="crop_panel.png")

        # Enter in the panel OCRs too (a second snip of the whole image after a click).
        canvas.dblclick()
        page.wait_for_function(
            "() => document.querySelector('.mpx-selection').dataset.crop === '0,0,1800,500'"
        )
        panel.focus()
        page.keyboard.press("Enter")
        page.locator(".mpx-history-item").nth(1).wait_for(timeout=60_000)
        rendered.filter(has_text="echo 1800x500 sha:").wait_for(timeout=60_000)

        # The other ways in: a typed path, a dropped file, a pasted image.
        typed = tmp_path / "typed.png"
        typed.write_bytes(make_png(300, 120))
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        # Keys pressed in the panel are the panel's: notebook shortcuts ("a" inserts a
        # cell, "b" too) must not fire.
        panel.focus()
        page.keyboard.press("a")
        page.keyboard.press("b")
        page.locator(".mpx-source").press_sequentially(str(typed))
        page.locator(".mpx-source").press("Enter")
        assert page.locator(".jp-Notebook .jp-Cell").count() == cells
        page.wait_for_function(WHOLE_IMAGE_IS, arg="0,0,300,120")
        page.evaluate(DROP_AND_PASTE, ["drop", _b64(make_png(320, 140))])
        page.wait_for_function(WHOLE_IMAGE_IS, arg="0,0,320,140")
        page.evaluate(DROP_AND_PASTE, ["paste", _b64(make_png(340, 160))])
        page.wait_for_function(WHOLE_IMAGE_IS, arg="0,0,340,160")
        # Too big for one message to the kernel: refused in plain words, image kept.
        page.evaluate(DROP_BIG_FILE)
        assert "Type its path" in page.locator(".mpx-error").inner_text()
        assert page.locator(".mpx-selection").get_attribute("data-crop") == "0,0,340,160"
        # Rotated by 90°, the whole image is 160 wide and 340 high, and so is what is sent.
        page.locator(".mpx-rotate-right").click()
        page.wait_for_function(WHOLE_IMAGE_IS, arg="0,0,160,340")
        # ...read in the EU region this time.
        page.locator(".mpx-region").select_option("eu")
        page.locator(".mpx-ocr").click()
        rendered.filter(has_text="echo 160x340 sha:").wait_for(timeout=60_000)
        meta = page.locator(".mpx-meta").inner_text()
        assert "rotated 90°" in meta and "region eu" in meta

        keep(panel, "crop_panel_jupyterlab_history.png")

        # Saved by JupyterLab with widget state on: results kept, no image bytes.
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        saved = json.loads((root / "panel.ipynb").read_text())
        states = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
        panel_states = [
            s["state"]
            for s in states["state"].values()
            if s["state"].get("_model_name") == "AnyModel"
        ]
        assert panel_states and "echo 160x340" in panel_states[0]["result_mmd"]
        text = json.dumps(saved)
        assert "data:image" not in text and "iVBORw0KGgo" not in text
        assert _b64(image.read_bytes())[:40] not in text
        print(f"\nscreenshots: {shot} and {ARTIFACTS / 'crop_panel_jupyterlab_history.png'}")
