"""How results display in notebooks: Mathpix's renderer where a widget front end runs.

``mathpix_nb/__init__.py`` plugs these functions into the core's display hooks, lazily:
nothing here is imported before a result is displayed in a kernel (or marimo). In a Jupyter kernel a
result's mime bundle gets a ``ResultView`` widget view, on top of the core's static
``text/markdown`` (GitHub-safe) and ``text/plain``; front ends without widgets (GitHub,
nbviewer, a terminal) show those. In marimo, ``_display_`` returns the widget itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, cast

from . import _assets

__all__ = ["rich_bundle", "rich_view", "show"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget front end may be listening)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _missing_note() -> str:
    return f"\n\n> *Shown as plain Markdown.* {_assets.BUILD_HINT}"


def _widget_entry(view: Any) -> dict[str, Any]:
    data, _meta = view._repr_mimebundle_()
    return dict(data[WIDGET_MIME])


def rich_bundle(result: Any, bundle: dict[str, Any]) -> dict[str, Any]:
    """The core's static bundle plus a ``ResultView`` widget view (in a kernel)."""
    if not _in_kernel():
        return bundle
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return bundle
    if _assets.find_renderer() is None:
        return {**bundle, "text/markdown": bundle["text/markdown"] + _missing_note()}
    from ._view import ResultView

    return {**bundle, WIDGET_MIME: _widget_entry(ResultView(result))}


def rich_view(result: Any) -> Any:
    """marimo's ``_display_``: the widget, or None (the core then shows its Markdown)."""
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return None
    if _assets.find_renderer() is None:
        return None
    from ._view import ResultView

    return ResultView(result)


def show(result: Any, *, titles: list[str] | None = None) -> None:
    """Display a result (or a list of results) with Mathpix's renderer."""
    from IPython.display import display as _display

    display = cast(Callable[[Any], None], _display)
    if isinstance(result, (list, tuple)):
        from ._view import ResultView

        display(ResultView(list(result), titles=titles))
    else:
        display(result)
