"""How results display: IPython's formatter, static viewers (no raw LaTeX), the widget view."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.getipython import get_ipython as running_shell
from IPython.testing.globalipapp import get_ipython

from mathpix_nb import OcrResult, PdfResult
from mathpix_nb._mmd import to_static_markdown
from mathpix_nb.jupyter import CropPanel, ResultView, _assets, _display

from .conftest import RICH_MMD, Browser, make_png

WIDGET = "application/vnd.jupyter.widget-view+json"
# Environments GitHub's and JupyterLab's MathJax draw inside $$ ... $$.
MATH_OK = {"aligned", "alignedat", "gathered", "split", "cases", "array", "matrix", "pmatrix",
           "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "subarray"}  # fmt: skip

EVERYTHING = (
    RICH_MMD
    + r"""
\title{A Study}
\author{Ann \and Bob}
\begin{abstract}
We measure things.
\end{abstract}
\begin{align*}
x &= 1 \label{eq:1} \\
y &= 2
\end{align*}
\begin{table}[h]
\begin{tabular}{lr}
\multicolumn{2}{c}{Both} \\
a & \$3 \\
\end{tabular}
\caption{Prices}
\end{table}
\begin{itemize}
\item one \textbf{bold}
\item two
\begin{enumerate}
\item inner
\end{enumerate}
\end{itemize}
\begin{theorem}
It holds, see \href{https://example.org}{this}.
\end{theorem}
\subsection{Chemistry}
<smiles>CCO</smiles>
\begin{equation}
E = mc^2
\end{equation}
| a | b |
|---|---|
| 1 | 2 |
"""
)


def raw_latex_problems(markdown: str) -> list[str]:
    """What a static viewer would show broken: environments outside math or in math it can't."""
    problems = []
    no_code = re.sub(r"```.*?```", "", markdown, flags=re.S)
    displays = re.findall(r"\$\$(.*?)\$\$", no_code, flags=re.S)
    outside = re.sub(r"\$\$.*?\$\$", "", no_code, flags=re.S)
    outside = re.sub(r"(?<!\\)\$[^$\n]+?(?<!\\)\$", "", outside)
    problems += re.findall(r"\\begin\{[^}]*\}|\\(?:sub)*section\*?\{|\\title\{|\\item\b", outside)
    problems += re.findall(r"\\(?:textbf|textit|emph|hline|caption|author|href|url)\b", outside)
    for body in displays:
        problems += [f"$$\\begin{{{e}}}" for e in re.findall(r"\\begin\{([^}]*)\}", body)
                     if e not in MATH_OK]  # fmt: skip
        problems += re.findall(r"\\label\{", body)
    return problems


def kernel_like(monkeypatch: pytest.MonkeyPatch, in_kernel: bool) -> None:
    """Format as inside a Jupyter kernel (the test shell has none), or as in a terminal."""
    if in_kernel:
        import ipykernel  # noqa: F401  (what the package looks for before it adds a view)
    monkeypatch.setattr(_display, "_in_kernel", lambda: in_kernel)


@pytest.fixture
def ip() -> Iterator[Any]:
    shell = get_ipython() or running_shell()
    active = list(shell.display_formatter.active_types)
    shell.display_formatter.active_types = [*active, "text/markdown", WIDGET]
    yield shell
    shell.display_formatter.active_types = active


def results() -> list[Any]:
    return [
        OcrResult(raw={"text": EVERYTHING, "request_id": "r1"}),
        OcrResult(raw={"latex_styled": r"\begin{array}{c} a \\ b \end{array}"}),
        PdfResult(pdf_id="p1", status="completed", outputs={"mmd": EVERYTHING.encode()}),
    ]


@pytest.mark.parametrize("in_kernel", [False, True], ids=["terminal", "kernel"])
def test_no_raw_latex_environment_in_any_rich_output(
    ip: Any, monkeypatch: pytest.MonkeyPatch, in_kernel: bool, built_renderer: Any
) -> None:
    kernel_like(monkeypatch, in_kernel)
    for result in results():
        data, _meta = ip.display_formatter.format(result)
        assert data["text/plain"].startswith(("OcrResult(", "PdfResult("))
        markdown = data["text/markdown"]
        assert raw_latex_problems(markdown) == [], markdown
        for mime, value in data.items():
            if isinstance(value, str) and mime != "text/plain":
                assert "\\begin{tabular}" not in value and "\\section" not in value, mime
        # In a kernel, the widget view (Mathpix's renderer in the page) comes first.
        assert (WIDGET in data) is in_kernel


def test_static_markdown_keeps_the_content(built_renderer: Any) -> None:
    md = to_static_markdown(EVERYTHING)
    assert "## Results" in md and "# A Study" in md and "### Chemistry" in md
    assert "| Name | Value |\n|---|---|\n| alpha | 1.5 |\n| beta | $x^{2}$ |" in md
    assert "| Both |   |" in md and "| a | \\$3 |" in md  # a prose dollar stays a dollar
    assert "$\\bar{x}$" in md and "$$\n\\sum_{i=1}^{n}" in md
    assert "\\begin{aligned}\nx &= 1" in md and "E = mc^2" in md
    assert "- one **bold**" in md and "   1. inner" in md and "*Prices*" in md
    assert "**Abstract.** We measure things." in md and "[this](https://example.org)" in md
    assert "`CCO`" in md and "| a | b |" in md


def test_a_view_carries_the_markdown_and_tables_and_sends_the_renderer(
    built_renderer: Any,
) -> None:
    view = ResultView(OcrResult(raw={"text": RICH_MMD}))
    (item,) = view.items
    assert item["mmd"] == RICH_MMD  # what Mathpix's renderer gets in the page
    assert item["tables"][0]["csv"] == "Name,Value\nalpha,1.5\nbeta,$x^{2}$\n"
    assert view.renderer == built_renderer.id and view.renderer_hint == ""
    # The 4 MB renderer is not in the widget's state (which notebooks save)...
    state = str(view.get_state())
    assert built_renderer.data[1000:1060].decode() not in state and len(state) < 200_000
    # ...it comes as a custom message when a view asks, gzip when the browser can unpack it.
    page = Browser(view)
    page.send({"type": "renderer", "gzip": True})
    header, buffers = page.received[-1]
    assert header == {"type": "renderer", "version": built_renderer.id, "encoding": "gzip"}
    assert gzip.decompress(buffers[0]) == _assets.RENDERER.read_bytes()
    assert len(buffers[0]) < len(built_renderer.data) / 2
    page.send({"type": "renderer", "gzip": False})
    assert page.received[-1][1][0] == built_renderer.data


def test_a_checkout_without_the_renderer_says_how_to_build_it(
    ip: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, client: Any
) -> None:
    monkeypatch.setattr(_assets, "RENDERER", tmp_path / "mmd_renderer.js")  # not built
    kernel_like(monkeypatch, True)
    data, _ = ip.display_formatter.format(OcrResult(raw={"text": RICH_MMD}))
    assert WIDGET not in data  # no view that could not draw: Markdown, and how to fix it
    assert "npm ci --prefix js && npm run build --prefix js" in data["text/markdown"]
    assert "| Name | Value |" in data["text/markdown"]
    view = ResultView(OcrResult(raw={"text": "x"}))
    assert view.renderer == "" and "npm ci --prefix js" in view.renderer_hint
    panel = CropPanel(client=client)
    try:
        assert "npm run build --prefix js" in panel.renderer_hint  # the page shows it
        page = Browser(panel)
        page.send({"type": "renderer", "gzip": True})
        assert "npm ci" in page.received[-1][0]["missing"]
    finally:
        panel.close()


def test_marimo_display_protocol_gets_the_widget(built_renderer: Any) -> None:
    result = OcrResult(raw={"text": RICH_MMD})
    view = result._display_()
    assert isinstance(view, ResultView) and view.items[0]["mmd"] == RICH_MMD
    pdf = PdfResult(pdf_id="p", status="completed", outputs={"md": b"# Title"})
    assert pdf._display_().items[0]["mmd"] == "# Title"


def test_show_lists_several_results_in_one_view(built_renderer: Any) -> None:
    from IPython.utils.capture import capture_output

    from mathpix_nb.jupyter import show

    with capture_output() as captured:
        show([OcrResult(raw={"text": "a"}), OcrResult(raw={"text": "b"})], titles=["1", "2"])
    (output,) = captured.outputs
    assert WIDGET in output.data


def test_panel_clears_the_old_result_when_a_new_image_loads(panel: CropPanel) -> None:
    panel.load(make_png())
    panel.ocr()
    assert panel.result_mmd.startswith("echo 240x160") and panel.selected == 0
    panel.load(make_png(100, 80))
    assert panel.result_mmd == "" and panel.result_raw == [] and panel.result_meta == ""
    assert panel.selected == -1 and panel.shown_result is None and panel.tables() == []
    assert len(panel.history) == 1  # the history keeps it


def test_panel_offers_its_tables_as_csv_and_dataframes(rich_client: Any) -> None:
    panel = CropPanel(client=rich_client)
    try:
        panel.load(make_png())
        panel.ocr()
        (table,) = panel.result_tables
        assert table["rows"] == 2 and table["columns"] == 2
        assert table["csv"].startswith("Name,Value\nalpha,1.5\n")
        (frame,) = panel.tables()
        assert list(frame.columns) == ["Name", "Value"] and frame["Name"].tolist() == [
            "alpha",
            "beta",
        ]
    finally:
        panel.close()
