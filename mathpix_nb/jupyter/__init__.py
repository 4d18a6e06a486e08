"""Notebook surfaces: the ``CropPanel`` widget, the ``%mathpix`` magic, result displays.

Needs the ``[jupyter]`` extra (anywidget, ipywidgets, IPython). Results and the panel are
drawn with Mathpix's own renderer (mathpix-markdown-it, built into ``static/``). See
docs/jupyter.md.
"""

from __future__ import annotations

from typing import Any

from ._display import show
from ._view import ResultView
from .widget import FORMATS, CropPanel

__all__ = ["FORMATS", "CropPanel", "ResultView", "Review", "show"]


def __getattr__(name: str) -> Any:
    # Review needs pandas: imported only when asked for.
    if name == "Review":
        from ._review import Review

        return Review
    raise AttributeError(f"module 'mathpix_nb.jupyter' has no attribute {name!r}")
