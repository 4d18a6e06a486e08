"""Fixtures for the notebook surfaces: test images and clients pointed at the local server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("anywidget")
pytest.importorskip("PIL.Image")


def make_png(width: int = 240, height: int = 160) -> bytes:
    """A small PNG with a black bar (so it is not blank) and a red corner (so rotation shows)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 30, width - 40, 90), fill="black")
    draw.rectangle((0, 0, 15, 15), fill="red")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture
def png_path(tmp_path: Path, png_bytes: bytes) -> Path:
    path = tmp_path / "formula.png"
    path.write_bytes(png_bytes)
    return path


@pytest.fixture
def client(local_server: Any) -> Iterator[Any]:
    """A Mathpix client for the shared echo server (both regions)."""
    from mathpix_nb import Mathpix

    with Mathpix(
        app_id=local_server.app_id,
        app_key=local_server.app_key,
        region_urls=dict(local_server.urls),
    ) as mathpix:
        yield mathpix


@pytest.fixture
def panel(client: Any) -> Iterator[Any]:
    from mathpix_nb.jupyter import CropPanel

    widget = CropPanel(client=client)
    yield widget
    widget.close()


class Browser:
    """Plays the browser side of a widget: trait updates and custom messages, as the JS sends."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.received: list[tuple[dict[str, Any], list[bytes]]] = []
        original = widget.send

        def capture(content: Any, buffers: Any = None) -> None:
            self.received.append((content, [bytes(b) for b in buffers or []]))
            original(content, buffers)

        widget.send = capture

    def set(self, **state: Any) -> None:
        """What ``model.set(...); model.save_changes()`` does."""
        self.widget.set_state(state)

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """What ``model.send(content, undefined, buffers)`` does."""
        self.widget._handle_custom_msg(content, [memoryview(b) for b in buffers or []])

    def images(self) -> list[tuple[dict[str, Any], bytes]]:
        return [(c, b[0]) for c, b in self.received if c.get("type") == "image" and b]


@pytest.fixture
def browser(panel: Any) -> Browser:
    return Browser(panel)


# Rich Mathpix Markdown, as Mathpix returns it for a page with a heading, math and a table.
RICH_MMD = r"""\section*{Results}
The weighted mean \( \bar{x} \) of the table below:
\[
\sum_{i=1}^{n} \left( \frac{a_i}{b_i} \right)
\]
\begin{tabular}{|l|c|}
\hline Name & Value \\
\hline alpha & 1.5 \\
\hline beta & \( x^{2} \) \\
\hline
\end{tabular}
"""


class RichEcho:
    """The echo engine, answering RICH_MMD plus the echo line (so a test knows the image)."""

    def __new__(cls) -> Any:
        from mathpix_nb.server import EchoEngine

        class _Rich(EchoEngine):  # type: ignore[misc]
            def recognize(self, image: bytes, options: Any) -> dict[str, Any]:
                out: dict[str, Any] = super().recognize(image, options)
                for line in out["lines"]:
                    line["text"] = RICH_MMD + "\n" + line["text"]
                return out

        return _Rich()


@pytest.fixture(scope="module")
def rich_server() -> Iterator[Any]:
    from mathpix_nb.server import LocalServer

    with LocalServer(engine=RichEcho()) as server:
        yield server


@pytest.fixture
def rich_client(rich_server: Any) -> Iterator[Any]:
    from mathpix_nb import Mathpix

    with Mathpix(
        app_id=rich_server.app_id, app_key=rich_server.app_key, base_url=rich_server.url
    ) as mathpix:
        yield mathpix


@pytest.fixture
def built_renderer() -> Any:
    """The built renderer; fails (never skips) with the build command when it is missing."""
    from mathpix_nb.jupyter import _assets

    found = _assets.find_renderer()
    if found is None:
        pytest.fail(_assets.BUILD_HINT)
    return found


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[Any]:
    """A hermetic JupyterLab for the browser tests (``_browser.Jupyter``); always stopped."""
    from ._browser import jupyter

    with jupyter(tmp_path) as lab:
        yield lab
