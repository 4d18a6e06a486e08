"""A result with a section, display math and a tabular, drawn by Mathpix's renderer in real
front ends: JupyterLab 4 (light and dark, narrow), Notebook 7 and marimo, headless Chromium.

Each test opens one notebook holding a ResultView of ``OcrResult(raw={...})`` (the renderer is
what is under test, so the result is built directly) and a crop panel that OCRs through a
local server whose engine answers the same Mathpix Markdown. Screenshots go to artifacts/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import RICH_MMD
from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, KERNEL_READY, TOKEN, _free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]

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


@contextmanager
def _server(app: str, tmp_path: Path, notebook: str) -> Iterator[str]:
    """JupyterLab or Notebook 7 on loopback, hermetic; stopped with SIGTERM whatever happens."""
    for module in ("playwright", app):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is missing: pip install 'mathpix_nb[browser]'")
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "jupyter"
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, SHOW, PANEL)]
    nbformat.write(nb, root / notebook)
    repo = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]),
    }
    port = _free_port()
    expose = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", app, "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         f"--{expose}.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={TOKEN}", proc, tmp_path / "server.log")
        yield base
    finally:
        _stop(proc)
        log.close()


def _wait_http(url: str, proc: Any, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within 90 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def _page(width: int) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 1100})
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _run_all(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => !!window.jupyterapp", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    # Fire and forget: awaiting this command can hang (browser-testing.md).
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


THEME_IS = """(dark) => document.body.dataset.jpThemeLight === (dark ? 'false' : 'true')"""


@pytest.mark.timeout(240)
def test_jupyterlab_light_and_dark_at_a_narrow_width(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with _server("jupyterlab", tmp_path, "render.ipynb") as base, _page(760) as page:
        _run_all(page, f"{base}/lab/tree/render.ipynb?token={TOKEN}")
        view = _check_rendered(page, ".mpx-view .mpx-doc")
        panel = _check_rendered(page, ".mpx-panel .mpx-rendered")
        # Narrow: the panel lays out in one column by its own width, and nothing overflows.
        assert panel["overflow"] <= 1 and view["overflow"] <= 1
        columns = page.locator(".mpx-results").evaluate(
            "(n) => getComputedStyle(n).gridTemplateColumns.split(' ').length"
        )
        assert columns == 1
        assert page.locator(".mpx-table-item .mpx-copy-csv").count() >= 2
        page.locator(".mpx-view").first.screenshot(path=str(ARTIFACTS / "render_lab_light.png"))
        page.locator(".mpx-panel").screenshot(path=str(ARTIFACTS / "panel_lab_light.png"))
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
        page.locator(".mpx-view").first.screenshot(path=str(ARTIFACTS / "render_lab_dark.png"))
        page.locator(".mpx-panel").screenshot(path=str(ARTIFACTS / "panel_lab_dark.png"))


@pytest.mark.timeout(240)
def test_notebook7_renders_the_same(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with _server("notebook", tmp_path, "render.ipynb") as base, _page(900) as page:
        _run_all(page, f"{base}/notebooks/render.ipynb?token={TOKEN}")
        _check_rendered(page, ".mpx-view .mpx-doc")
        _check_rendered(page, ".mpx-panel .mpx-rendered")
        page.locator(".mpx-view").first.screenshot(path=str(ARTIFACTS / "render_notebook7.png"))


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
    try:
        import marimo  # noqa: F401
    except ImportError:
        pytest.fail("marimo is missing: pip install 'mathpix_nb[browser]'")
    ARTIFACTS.mkdir(exist_ok=True)
    app = tmp_path / "render_app.py"
    app.write_text(MARIMO_APP)
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    env["HOME"] = str(tmp_path)  # marimo's config and state stay in the test's folder
    port = _free_port()
    log = (tmp_path / "marimo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1",
         "--port", str(port), "--no-token"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc, tmp_path / "marimo.log")
        with _page(900) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            _check_rendered(page, ".mpx-view .mpx-doc")
            _check_rendered(page, ".mpx-panel .mpx-rendered")
            page.locator(".mpx-panel").first.screenshot(path=str(ARTIFACTS / "panel_marimo.png"))
    finally:
        _stop(proc)
        log.close()
