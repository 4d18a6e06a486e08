"""Notebook surfaces: the ``CropPanel`` widget, the ``%mathpix`` magic, result displays.

Needs the ``[jupyter]`` extra (anywidget, ipywidgets, IPython). Results and the panel are
drawn with Mathpix's own renderer (mathpix-markdown-it, built into ``static/``). See
docs/jupyter.md.
"""

from __future__ import annotations

from ._display import show
from ._view import ResultView
from .widget import FORMATS, CropPanel

__all__ = ["FORMATS", "CropPanel", "ResultView", "show"]
