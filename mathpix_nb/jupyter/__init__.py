"""Notebook surfaces: the ``CropPanel`` widget, the ``InkPad``, the ``%mathpix`` magic,
result displays.

Needs the ``[jupyter]`` extra (anywidget, ipywidgets, IPython). Results, the panel and the
pad are drawn with Mathpix's own renderer (mathpix-markdown-it, built into ``static/``). See
docs/jupyter.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._display import show
from ._view import ResultView
from .widget import FORMATS, CropPanel

if TYPE_CHECKING:  # pragma: no cover
    from ._ink import InkPad
    from ._review import Review

__all__ = ["FORMATS", "CropPanel", "InkPad", "ResultView", "Review", "show"]


def __getattr__(name: str) -> Any:
    # The ink pad and Review (which needs pandas) are imported only when asked for.
    if name == "InkPad":
        from ._ink import InkPad

        return InkPad
    if name == "Review":
        from ._review import Review

        return Review
    raise AttributeError(f"module 'mathpix_nb.jupyter' has no attribute {name!r}")
