"""The InkPad in a real JupyterLab, headless Debian Chromium through Playwright: two strokes
drawn with the mouse are read live (after the debounce, no button) by the local echo server,
which describes the ink it got (``echo strokes:N points:M bbox:x0,y0,x1,y1``): the count and
the box of what was drawn must come back, rendered by Mathpix's renderer. Undo reads again;
the saved notebook keeps the result but not the strokes. See shared/browser-testing.md."""

from __future__ import annotations

import json
import re

import pytest

from ._browser import MARKS, Jupyter, browser_page, run_notebook
from ._browser import screenshot as keep

pytestmark = MARKS

SETUP_CELL = """\
from mathpix_nb import Mathpix
from mathpix_nb.jupyter import InkPad
from mathpix_nb.server import LocalServer

server = LocalServer(engine="echo").start()
client = Mathpix(app_id=server.app_id, app_key=server.app_key, base_url=server.url)
"""
PAD_CELL = "pad = InkPad(client=client, debounce=0.3)\npad"


def _bbox(text: str) -> list[float]:
    found = re.search(r"bbox:([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+)", text)
    assert found, text
    return [float(v) for v in found.groups()]


@pytest.mark.timeout(300)
def test_draw_strokes_with_the_mouse_and_see_them_read(jupyterlab: Jupyter) -> None:
    root = jupyterlab.root
    with browser_page(1200, 900, scale=2) as page:
        run_notebook(page, jupyterlab, "ink.ipynb", [SETUP_CELL, PAD_CELL])
        canvas = page.locator(".mpx-ink-canvas")
        canvas.wait_for(state="visible", timeout=90_000)
        assert "Local server at http://127.0.0.1" in page.locator(".mpx-ink .mpx-note").inner_text()
        box = canvas.bounding_box()
        assert box is not None and box["height"] > 100

        def draw(points: list[tuple[float, float]]) -> None:
            page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
            page.mouse.down()
            for x, y in points[1:]:
                page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
            page.mouse.up()

        # an "x": two crossing strokes, drawn in canvas pixels 40..160 x 30..150
        draw([(40, 30), (100, 90), (160, 150)])
        draw([(160, 30), (40, 150)])
        result = page.locator(".mpx-ink-result")
        result.filter(has_text="echo strokes:2 points:").wait_for(timeout=60_000)
        page.locator(".mpx-ink-result[data-rendered=mathpix]").wait_for(timeout=60_000)
        text = result.inner_text()
        x0, y0, x1, y1 = _bbox(text)
        assert abs(x0 - 40) <= 2 and abs(y0 - 30) <= 2, text
        assert abs(x1 - 160) <= 2 and abs(y1 - 150) <= 2, text
        assert page.locator(".mpx-ink .mpx-status").get_attribute("data-status") == "done"
        assert "\\text{echo strokes:2" in page.locator(".mpx-ink-latex").inner_text()
        assert canvas.get_attribute("data-strokes") == "2"
        shot = keep(page.locator(".mpx-ink"), "ink_pad_jupyterlab.png", docs="ink_pad.png")

        # Undo: one stroke left, read again (a new session gets the drawing)
        page.locator(".mpx-undo").click()
        result.filter(has_text="echo strokes:1 points:").wait_for(timeout=60_000)
        assert canvas.get_attribute("data-strokes") == "1"
        assert page.locator(".mpx-ink .mpx-error").is_hidden()

        # Saved with widget state: the result is kept, the strokes are not.
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_timeout(1500)
        saved = json.loads((root / "ink.ipynb").read_text())
        states = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
        pads = [s["state"] for s in states["state"].values() if s["state"].get("kind") == "ink"]
        assert pads and "echo strokes:1" in pads[0]["result_mmd"]
        assert pads[0]["kept_strokes"] == [] and pads[0]["stroke_count"] == 1
        assert "app_key" not in json.dumps(pads[0])
        print(f"\nscreenshot: {shot}")
