"""A result with a section, display math and a tabular, drawn by Mathpix's renderer in real
front ends: JupyterLab 4 (light and dark, narrow), Notebook 7 and marimo, headless Chromium.

Each test opens one notebook holding a ResultView of ``OcrResult(raw={...})`` (the renderer is
what is under test, so the result is built directly) and a crop panel that OCRs through a
local server whose engine answers the same Mathpix Markdown. Screenshots go to artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._browser import MARKS, THEME_IS, browser_page, jupyter, marimo, run_notebook
from ._browser import screenshot as keep
from .conftest import RICH_MMD

pytestmark = MARKS

SETUP = f"""\
from mathpix_nb import Mathpix, OcrResult
from mathpix_nb.jupyter import CropPanel
from mathpix_nb.server import LocalServer
from tests.jupyter.conftest import RichEcho, make_png

RICH = {RICH_MMD!r}
result = OcrResult(raw={{"text": RICH, "request_id": "r1"}})
server = LocalServer(engine=RichEcho()).start()
client = Mathpix(app_id=server.app_id, app_key=server.app_key, base_url=server.url)
"""
SHOW = "result"
PANEL = "panel = CropPanel(make_png(), client=client)\npanel.ocr()\npanel"

# Checks one rendered document in the page: a real table, drawn math, no raw LaTeX left.
CHECK_DOC = """(doc) => {
  const cells = [...doc.querySelectorAll('table td, table th')].map((c) => c.textContent.trim());
  const svgs = [...doc.querySelectorAll('mjx-container svg')];
  const display = doc.querySelector('mjx-container[display=true] svg');
  const heading = doc.querySelector('h1, h2, h3');
  const inline = doc.querySelector('mjx-container:not([display]) svg');
  return {
    cells, svgs: svgs.length,
    displayHeight: display ? display.getBoundingClientRect().height : 0,
    heading: heading ? heading.textContent.trim() : '',
    inlineDisplay: inline ? getComputedStyle(inline).display : '',
    text: doc.innerText,
    width: doc.getBoundingClientRect().width,
    overflow: doc.closest('.mpx-root').scrollWidth - doc.closest('.mpx-root').clientWidth,
  };
}"""


def _check_rendered(page: Any, selector: str) -> dict[str, Any]:
    doc = page.locator(f"{selector}[data-rendered=mathpix]").first
    doc.wait_for(timeout=60_000)
    got: dict[str, Any] = doc.evaluate(CHECK_DOC)
    assert {"Name", "Value", "alpha", "1.5", "beta"} <= set(got["cells"]), got["cells"]
    assert got["svgs"] >= 3  # \bar{x}, the display sum, x^2 in the table
    assert got["displayHeight"] > 30  # the display-size ∑ with stretched brackets
    assert got["heading"] == "Results"
    assert got["inlineDisplay"] == "inline-block"  # inline math stays in its line
    assert "\\begin{" not in got["text"] and "\\section" not in got["text"]
    assert "\\hline" not in got["text"]
    return got


@pytest.mark.timeout(240)
def test_jupyterlab_light_and_dark_at_a_narrow_width(tmp_path: Path) -> None:
    with jupyter(tmp_path) as lab, browser_page(760) as page:
        run_notebook(page, lab, "render.ipynb", [SETUP, SHOW, PANEL])
        view = _check_rendered(page, ".mpx-view .mpx-doc")
        panel = _check_rendered(page, ".mpx-panel .mpx-rendered")
        # Narrow: the panel lays out in one column by its own width, and nothing overflows.
        assert panel["overflow"] <= 1 and view["overflow"] <= 1
        columns = page.locator(".mpx-results").evaluate(
            "(n) => getComputedStyle(n).gridTemplateColumns.split(' ').length"
        )
        assert columns == 1
        assert page.locator(".mpx-table-item .mpx-copy-csv").count() >= 2
        keep(page.locator(".mpx-view").first, "render_lab_light.png")
        keep(page.locator(".mpx-panel"), "panel_lab_light.png")
        # Keyboard cropping: focus the picture (a visible ring), an arrow draws the middle half,
        # arrows move it, Shift moves ten steps, Alt resizes, Escape = whole image.
        canvas = page.locator(".mpx-panel .mpx-canvas")
        canvas.focus()
        ring = canvas.evaluate("(n) => getComputedStyle(n).outlineWidth")
        assert ring == "2px"
        crop = page.locator(".mpx-panel .mpx-selection")
        page.keyboard.press("ArrowRight")
        assert crop.get_attribute("data-crop") == "60,40,120,80"
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Shift+ArrowDown")
        x, y, w, h = (int(v) for v in (crop.get_attribute("data-crop") or "").split(","))
        assert x > 60 and y >= 40 + 10 and (w, h) == (120, 80)
        page.keyboard.press("Alt+ArrowLeft")
        assert int((crop.get_attribute("data-crop") or "").split(",")[2]) < 120
        page.keyboard.press("Escape")
        assert crop.get_attribute("data-crop") == "0,0,240,160"
        light = page.locator(".mpx-panel .mpx-doc").evaluate("(n) => getComputedStyle(n).color")

        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
        )
        page.wait_for_function(THEME_IS, arg=True, timeout=30_000)
        page.wait_for_timeout(300)
        _check_rendered(page, ".mpx-view .mpx-doc")
        dark = page.locator(".mpx-panel .mpx-doc").evaluate("(n) => getComputedStyle(n).color")
        assert dark != light  # the text (and the SVG math, drawn in currentColor) follows
        fill = page.locator(".mpx-view mjx-container svg g").first.evaluate(
            "(n) => getComputedStyle(n).fill"
        )
        assert fill == dark
        keep(page.locator(".mpx-view").first, "render_lab_dark.png")
        keep(page.locator(".mpx-panel"), "panel_lab_dark.png")


@pytest.mark.timeout(240)
def test_notebook7_renders_the_same(tmp_path: Path) -> None:
    with jupyter(tmp_path, "notebook") as nb7, browser_page(900) as page:
        run_notebook(page, nb7, "render.ipynb", [SETUP, SHOW, PANEL])
        _check_rendered(page, ".mpx-view .mpx-doc")
        _check_rendered(page, ".mpx-panel .mpx-rendered")
        keep(page.locator(".mpx-view").first, "render_notebook7.png")


MARIMO_APP = f"""\
import marimo

app = marimo.App()


@app.cell
def _():
    from mathpix_nb import Mathpix, OcrResult
    from mathpix_nb.jupyter import CropPanel
    from mathpix_nb.server import LocalServer
    from tests.jupyter.conftest import RichEcho, make_png

    RICH = {RICH_MMD!r}
    server = LocalServer(engine=RichEcho()).start()
    client = Mathpix(app_id=server.app_id, app_key=server.app_key, base_url=server.url)
    return CropPanel, OcrResult, RICH, client, make_png


@app.cell
def _(OcrResult, RICH):
    OcrResult(raw={{"text": RICH}})
    return


@app.cell
def _(CropPanel, client, make_png):
    panel = CropPanel(make_png(), client=client)
    panel.ocr()
    panel
    return


if __name__ == "__main__":
    app.run()
"""


@pytest.mark.timeout(240)
def test_marimo_renders_results_and_the_panel(tmp_path: Path) -> None:
    with marimo(tmp_path, MARIMO_APP) as url, browser_page(900) as page:
        page.goto(url)
        _check_rendered(page, ".mpx-view .mpx-doc")
        _check_rendered(page, ".mpx-panel .mpx-rendered")
        keep(page.locator(".mpx-panel").first, "panel_marimo.png")
