"""Notebook surfaces: the ``CropPanel`` widget, the ``%mathpix`` magic, rendering helpers.

Needs the ``[jupyter]`` extra (anywidget, ipywidgets, IPython). See docs/jupyter.md.
"""

from __future__ import annotations

from ._display import show
from ._render import markdown_to_html, render_result_html
from .widget import FORMATS, CropPanel

__all__ = ["FORMATS", "CropPanel", "markdown_to_html", "render_result_html", "show"]
