"""What the browser tests share: Debian's Chromium under Playwright, JupyterLab / Notebook 7 /
marimo started hermetically on loopback (and always stopped), the kernel-readiness wait, and
screenshots (artifacts/, and the docs' images when ``MATHPIX_NB_DOCS_SCREENSHOTS`` is set).
See shared/browser-testing.md for the flags and the one race these helpers avoid."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium",) if Path(p).exists()), None
)
TOKEN = "mathpix-nb-browser-test"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: the marks of every browser test module
MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]
#: where the docs' screenshots go when set (e.g. docs/img), relative to the repository; read
#: on import, as every test's environment is cleaned of MATHPIX_* (tests/conftest.py)
DOCS_ENV = "MATHPIX_NB_DOCS_SCREENSHOTS"
DOCS_DIR = os.environ.get(DOCS_ENV) or None
DOCS_MAX_BYTES = 150_000

KERNEL_READY = """() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = widget && widget.sessionContext && widget.sessionContext.session
    && widget.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
THEME_IS = """(dark) => document.body.dataset.jpThemeLight === (dark ? 'false' : 'true')"""


def need(*modules: str) -> None:
    """Fail (never skip) without the [browser] extra, so CI cannot pass by skipping."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is missing: pip install 'mathpix_nb[browser]'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_notebook(path: Path, cells: Sequence[str]) -> None:
    """A Python 3 notebook of these code cells."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def _env(**extra: str) -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH (cells import tests.*)."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url`` answers 200 (90 s at most); fails with the log if the process exits."""
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (so the server stops its kernels), then SIGKILL after 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def _serve(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, ready: str) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            wait_http(ready, proc, log)
            yield
        finally:
            stop(proc)


@dataclass(frozen=True)
class Jupyter:
    """A running JupyterLab or Notebook 7: its base URL and the folder it serves."""

    base: str
    root: Path
    app: str

    def url(self, notebook: str) -> str:
        where = "lab/tree" if self.app == "jupyterlab" else "notebooks"
        return f"{self.base}/{where}/{notebook}?token={TOKEN}"


@contextmanager
def jupyter(tmp_path: Path, app: str = "jupyterlab") -> Iterator[Jupyter]:
    """JupyterLab (or ``app="notebook"``) on loopback with hermetic config: no news popup,
    widget state saved into notebooks, ``window.jupyterapp`` exposed; stopped with SIGTERM
    whatever happens."""
    need("playwright", app)
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "jupyter"
    settings = home / "config" / "lab" / "user-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    state = settings / "@jupyter-widgets" / "jupyterlab-manager" / "plugin.jupyterlab-settings"
    for path, value in ((news, {"fetchNews": "false"}), (state, {"saveState": True})):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(value))
    env = _env(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    port = free_port()
    expose = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", app, "--no-browser", "--allow-root", "--ip=127.0.0.1",
        f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        f"--{expose}.expose_app_in_browser=True",
    ]  # fmt: skip
    ready = f"{base}/api/status?token={TOKEN}"
    with _serve(cmd, env, root, tmp_path / "server.log", ready):
        yield Jupyter(base, root, app)


@contextmanager
def marimo(tmp_path: Path, app_source: str) -> Iterator[str]:
    """``marimo run`` of this app on loopback (its config in the test's folder); its URL."""
    try:
        import marimo as _  # noqa: F401
    except ImportError:
        pytest.fail("marimo is missing: pip install 'mathpix_nb[browser]'")
    app = tmp_path / "app.py"
    app.write_text(app_source)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [
        sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1",
        "--port", str(port), "--no-token",
    ]  # fmt: skip
    with _serve(cmd, _env(HOME=str(tmp_path)), tmp_path, tmp_path / "marimo.log", url):
        yield url


@contextmanager
def browser_page(
    width: int = 1200, height: int = 1100, scale: float = 1, **context: Any
) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium (60 s default timeout); closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(
                viewport={"width": width, "height": height}, device_scale_factor=scale, **context
            )
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def open_notebook(page: Any, url: str) -> None:
    """Open a notebook and wait until its kernel is connected and idle (not the indicator:
    it shows idle before a kernel exists)."""
    page.goto(url)
    page.wait_for_function("() => !!window.jupyterapp", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)


def run_all_cells(page: Any) -> None:
    """Fire and forget: awaiting this command can hang (browser-testing.md)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def run_notebook(page: Any, server: Jupyter, name: str, cells: Sequence[str]) -> None:
    """Write a notebook of ``cells`` into the server's folder, open it, run all its cells."""
    write_notebook(server.root / name, cells)
    open_notebook(page, server.url(name))
    run_all_cells(page)


def screenshot(locator: Any, name: str, *, docs: str | None = None) -> Path:
    """Save ``locator``'s screenshot as artifacts/``name``; with ``docs`` and
    ``MATHPIX_NB_DOCS_SCREENSHOTS=docs/img`` set, also as that folder's ``docs`` (one CSS
    pixel a pixel, fewer colours if need be, at most DOCS_MAX_BYTES)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    locator.screenshot(path=str(path))
    if docs and DOCS_DIR:
        target = Path(DOCS_DIR) if Path(DOCS_DIR).is_absolute() else REPO / DOCS_DIR
        target.mkdir(parents=True, exist_ok=True)
        data = _small_png(locator.screenshot(scale="css", animations="disabled"))
        assert len(data) <= DOCS_MAX_BYTES, f"{docs}: {len(data)} bytes"
        (target / docs).write_bytes(data)
    return path


def _small_png(data: bytes) -> bytes:
    """The PNG re-saved optimised; over the budget, with a 256-colour palette."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    for candidate in (image, image.quantize(256, method=Image.Quantize.MEDIANCUT)):
        buf = io.BytesIO()
        candidate.save(buf, "PNG", optimize=True)
        if buf.tell() <= DOCS_MAX_BYTES:
            break
    return buf.getvalue()
