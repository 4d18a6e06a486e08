"""``ResultView``: an OCR result drawn by Mathpix's renderer, the way the crop panel draws it.

Every ``OcrResult`` / ``PdfResult`` shown in a notebook becomes one of these (see
``_display.py``), so a result looks the same in the panel and in a cell's output. The widget
and the panel share one front-end module (``static/widgets.js``) and one renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets

from .._mmd import result_mmd
from .._tables import extract_tables
from . import _assets

__all__ = ["MathpixWidget", "ResultView", "table_summaries"]


def table_summaries(result: Any) -> list[dict[str, Any]]:
    """What the page shows of a result's tables: shape and CSV (for the copy button)."""
    if result is None:
        return []
    return [
        {"index": i, "rows": t.shape[0], "columns": t.shape[1], "csv": t.to_csv()}
        for i, t in enumerate(extract_tables(result))
    ]


def _empty_text(result: Any) -> str:
    if hasattr(result, "pdf_id"):
        return f"PDF {result.pdf_id}: {getattr(result, 'status', '')} (no text)"
    return "(no text recognised)"


class MathpixWidget(anywidget.AnyWidget):
    """Base of our widgets: the shared module, and the renderer sent on request."""

    _esm = _assets.esm("widgets.js")  # anywidget takes a str
    _css = _assets.CSS

    kind = traitlets.Unicode("").tag(sync=True)
    #: Id of the built renderer ("" when this checkout has none: see renderer_hint).
    renderer = traitlets.Unicode("").tag(sync=True)
    renderer_hint = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        found = _assets.find_renderer()
        self.renderer = found.id if found else ""
        self.renderer_hint = "" if found else _assets.BUILD_HINT
        self.on_msg(self._dispatch)

    def _dispatch(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if isinstance(content, dict) and content.get("type") == "renderer":
            self._send_renderer(bool(content.get("gzip")))
        else:
            self._on_custom(content, buffers)

    def _on_custom(self, content: Any, buffers: list[Any]) -> None:
        """Messages of a subclass (the panel's buttons)."""

    def _send_renderer(self, gzip_ok: bool) -> None:
        found = _assets.find_renderer()
        if found is None:
            self.send({"type": "renderer", "missing": _assets.BUILD_HINT})
            return
        encoding, data = found.payload(gzip_ok)
        self.send({"type": "renderer", "version": found.id, "encoding": encoding}, buffers=[data])


class ResultView(MathpixWidget):
    """One or more results rendered with Mathpix Markdown (math as SVG, tables as tables).

    Args:
        results: an ``OcrResult`` / ``PdfResult``, or a sequence of them.
        titles: a caption per result (e.g. the image each came from).
    """

    kind = traitlets.Unicode("result").tag(sync=True)
    items = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)

    def __init__(self, results: Any, *, titles: Sequence[str] | None = None) -> None:
        super().__init__()
        many = list(results) if isinstance(results, (list, tuple)) else [results]
        names = list(titles) if titles is not None else [""] * len(many)
        self._results = many
        self.items = [
            {
                "title": str(name or ""),
                "mmd": result_mmd(r),
                "tables": table_summaries(r),
                "empty": _empty_text(r),
            }
            for name, r in zip(names, many, strict=False)
        ]

    @property
    def results(self) -> list[Any]:
        """The results this view shows."""
        return list(self._results)

    def tables(self) -> list[Any]:
        """The tables of every result shown, as pandas DataFrames."""
        return [frame for r in self._results for frame in r.tables()]

    def __repr__(self) -> str:
        return "\n\n".join(repr(r) for r in self._results)
