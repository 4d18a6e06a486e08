"""Show OCR results in a notebook the way the panel shows them."""

from __future__ import annotations

from typing import Any

from ._render import _result_markdown, render_result_html

__all__ = ["show"]


def show(result: Any) -> None:
    """Display an ``OcrResult``: HTML with MathML math, plus Markdown and plain-text fallbacks.

    Front ends pick the richest form they can: JupyterLab and VS Code show the HTML, a
    terminal shows the text.
    """
    from IPython.display import display

    bundle = {
        "text/html": f'<div class="mpx-result">{render_result_html(result)}</div>',
        "text/markdown": _result_markdown(result),
        "text/plain": repr(result),
    }
    display(bundle, raw=True)
