"""Result objects: thin, typed views over the API's JSON that render in Jupyter.

The raw answer is always kept (``.raw``) so nothing the API returns is lost. Reprs never
show secrets (``AppToken`` masks its token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._mmd import MATH
from ._outputs import ConvertibleResult

__all__ = ["AppToken", "LatexResult", "OcrResult", "PdfResult", "to_markdown"]

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "AppToken",
    "LatexResult",
    "OcrResult",
    "PdfResult",
    "set_display_hooks",
    "to_markdown",
]


def to_markdown(mmd: str) -> str:
    r"""Mathpix Markdown -> Markdown with ``$``/``$$`` math that JupyterLab renders.

    Dollar signs outside math are escaped so they do not start math by accident.

    >>> to_markdown(r"Area \( \pi r^2 \) costs $5")
    'Area $\\pi r^2$ costs \\$5'
    >>> to_markdown(r"\[ x = 1 \]")
    '\n$$\nx = 1\n$$\n'
    """
    out: list[str] = []
    pos = 0
    # Mathpix Markdown uses \( \) and \[ \]; JupyterLab's renderer wants $ and $$. Dollar
    # spans are not MMD math: their dollars are escaped like any other.
    for match in MATH.finditer(mmd):
        inline, display = match.group("i1"), match.group("d2")
        if inline is None and display is None:
            continue
        out.append(mmd[pos : match.start()].replace("$", r"\$"))
        if inline is not None:
            out.append(f"${inline.strip()}$")
        else:
            out.append(f"\n$$\n{display.strip()}\n$$\n")
        pos = match.end()
    out.append(mmd[pos:].replace("$", r"\$"))
    return "".join(out)


# -- display hooks ----------------------------------------------------------------------------
# The core builds the static view of a result (GitHub-safe Markdown, see _mmd.py). A notebook
# surface can draw it richer (mathpix_nb.jupyter draws it with Mathpix's renderer) by plugging
# in here; the core never imports a surface.
_logger = logging.getLogger("mathpix_nb")
BundleHook = Callable[[Any, dict[str, Any]], dict[str, Any]]
ViewHook = Callable[[Any], Any]
_bundle_hook: BundleHook | None = None
_view_hook: ViewHook | None = None


def set_display_hooks(*, bundle: BundleHook | None, view: ViewHook | None) -> None:
    """Plug in a notebook surface's display of results.

    ``bundle(result, static_bundle)`` returns the mime bundle IPython shows (it may add a
    widget view to the static ``text/markdown`` + ``text/plain`` bundle); ``view(result)``
    returns an object to show instead (marimo's ``_display_``), or None for the static view.
    """
    global _bundle_hook, _view_hook
    _bundle_hook, _view_hook = bundle, view


class _StaticView:
    """What marimo shows when no richer view is available: the static Markdown."""

    def __init__(self, markdown: str, text: str) -> None:
        self._markdown, self._text = markdown, text

    def _repr_markdown_(self) -> str:
        return self._markdown

    def __repr__(self) -> str:
        return self._text


def _mime_bundle(result: Any, empty: str) -> dict[str, Any]:
    from ._mmd import result_mmd, to_static_markdown

    markdown = to_static_markdown(result_mmd(result)) or empty
    bundle: dict[str, Any] = {"text/markdown": markdown, "text/plain": repr(result)}
    if _bundle_hook is not None:
        try:
            bundle = _bundle_hook(result, bundle)
        except Exception:  # a display must not fail: the static view is still right
            _logger.warning("rich display of a result failed; showing Markdown", exc_info=True)
    return bundle


def _display_view(result: Any, empty: str) -> Any:
    if _view_hook is not None:
        try:
            view = _view_hook(result)
        except Exception:
            _logger.warning("rich display of a result failed; showing Markdown", exc_info=True)
            view = None
        if view is not None:
            return view
    bundle = _mime_bundle(result, empty)
    return _StaticView(bundle["text/markdown"], bundle["text/plain"])


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NO_TEXT = "*(no text recognised)*"


@dataclass(frozen=True, repr=False)
class OcrResult(ConvertibleResult):
    """The answer of ``v3/text`` for one image.

    ``text`` is Mathpix Markdown (math in ``\\( \\)``/``\\[ \\]``); ``markdown()`` converts it
    for Jupyter; ``raw`` is the whole JSON answer; ``to_docx(path)``, ``to_pdf``... write it as a
    document (see :class:`~mathpix_nb._outputs.ConvertibleResult`).
    """

    raw: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def text(self) -> str:
        return str(self.raw.get("text") or "")

    @property
    def latex_styled(self) -> str | None:
        return self.raw.get("latex_styled")

    @property
    def html(self) -> str | None:
        return self.raw.get("html")

    @property
    def data(self) -> list[dict[str, Any]]:
        return list(self.raw.get("data") or [])

    @property
    def confidence(self) -> float | None:
        value = self.raw.get("confidence")
        return None if value is None else float(value)

    @property
    def confidence_rate(self) -> float | None:
        value = self.raw.get("confidence_rate")
        return None if value is None else float(value)

    @property
    def request_id(self) -> str | None:
        return self.raw.get("request_id")

    @property
    def is_printed(self) -> bool | None:
        return self.raw.get("is_printed")

    @property
    def is_handwritten(self) -> bool | None:
        return self.raw.get("is_handwritten")

    @property
    def line_data(self) -> list[dict[str, Any]]:
        return list(self.raw.get("line_data") or [])

    @property
    def word_data(self) -> list[dict[str, Any]]:
        return list(self.raw.get("word_data") or [])

    def markdown(self) -> str:
        """Markdown with ``$``/``$$`` delimiters (what JupyterLab renders)."""
        return to_markdown(self.text)

    def tables(self) -> list[pd.DataFrame]:
        """Every table of the result as a pandas DataFrame (needs pandas).

        From the API's ``tsv`` / ``table_html`` data or ``html`` when they were requested,
        else parsed from the Mathpix Markdown (``\\begin{tabular}`` and pipe tables).
        """
        from ._tables import extract_tables, tables_to_frames

        return tables_to_frames(extract_tables(self))

    # Display: GitHub-safe Markdown everywhere, Mathpix's renderer where a surface adds it.
    def _repr_markdown_(self) -> str:
        return str(_mime_bundle(self, _NO_TEXT)["text/markdown"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _mime_bundle(self, _NO_TEXT)

    def _display_(self) -> Any:  # marimo's display protocol
        return _display_view(self, _NO_TEXT)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        conf = "None" if self.confidence is None else f"{self.confidence:.3f}"
        rid = self.request_id
        return f"OcrResult(text={_short(self.text)!r}, confidence={conf}, request_id={rid!r})"


@dataclass(frozen=True, repr=False)
class LatexResult:
    """The answer of the legacy ``v3/latex`` endpoint."""

    raw: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def _get(self, key: str) -> str | None:
        value = self.raw.get(key)
        return None if value is None else str(value)

    @property
    def latex_styled(self) -> str | None:
        return self._get("latex_styled")

    @property
    def latex_simplified(self) -> str | None:
        return self._get("latex_simplified")

    @property
    def latex(self) -> str:
        """The best LaTeX the answer carries (styled, simplified or normal)."""
        for key in ("latex_styled", "latex_simplified", "latex_normal", "text"):
            if self.raw.get(key):
                return str(self.raw[key])
        return ""

    @property
    def text(self) -> str | None:
        return self._get("text")

    @property
    def asciimath(self) -> str | None:
        return self._get("asciimath")

    @property
    def mathml(self) -> str | None:
        return self._get("mathml")

    @property
    def confidence(self) -> float | None:
        value = self.raw.get("latex_confidence")
        return None if value is None else float(value)

    @property
    def confidence_rate(self) -> float | None:
        value = self.raw.get("latex_confidence_rate")
        return None if value is None else float(value)

    @property
    def request_id(self) -> str | None:
        return self._get("request_id")

    def _repr_markdown_(self) -> str:
        return f"$$\n{self.latex}\n$$" if self.latex else "*(no LaTeX recognised)*"

    def __str__(self) -> str:
        return self.latex

    def __repr__(self) -> str:
        return f"LatexResult(latex={_short(self.latex)!r}, request_id={self.request_id!r})"


@dataclass(frozen=True, repr=False)
class PdfResult(ConvertibleResult):
    """A finished ``v3/pdf`` conversion: the status answer plus the downloaded outputs."""

    pdf_id: str
    status: str
    outputs: dict[str, bytes] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def _text(self, ext: str) -> str | None:
        data = self.outputs.get(ext)
        return None if data is None else data.decode("utf-8", "replace")

    @property
    def mmd(self) -> str | None:
        return self._text("mmd")

    @property
    def md(self) -> str | None:
        return self._text("md")

    @property
    def lines(self) -> dict[str, Any] | None:
        """Parsed ``lines.json`` when it was requested."""
        data = self.outputs.get("lines.json")
        return None if data is None else json.loads(data)

    @property
    def pages(self) -> list[str]:
        """Per-page text from ``lines.json`` (empty unless it was requested)."""
        lines = self.lines
        if not lines:
            return []
        pages = sorted(lines.get("pages") or [], key=lambda p: p.get("page", 0))
        return [
            "\n".join(str(line.get("text") or "") for line in page.get("lines") or [])
            for page in pages
        ]

    @property
    def num_pages(self) -> int | None:
        return self.raw.get("num_pages")

    def tables(self) -> list[pd.DataFrame]:
        """Every table of the document as a pandas DataFrame (needs pandas).

        From the ``html`` output when it was requested, else parsed from the ``mmd`` / ``md``.
        """
        from ._tables import extract_tables, tables_to_frames

        return tables_to_frames(extract_tables(self))

    def _repr_markdown_(self) -> str:
        return str(_mime_bundle(self, self._empty())["text/markdown"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _mime_bundle(self, self._empty())

    def _display_(self) -> Any:  # marimo's display protocol
        return _display_view(self, self._empty())

    def _empty(self) -> str:
        return f"*PDF {self.pdf_id}: {self.status}*"

    def __repr__(self) -> str:
        return (
            f"PdfResult(pdf_id={self.pdf_id!r}, status={self.status!r}, "
            f"outputs={sorted(self.outputs)!r})"
        )


def _expires_at_seconds(value: Any) -> float:
    """``app_token_expires_at`` as epoch seconds (the API sends ms, as number or string)."""
    number = float(value)
    return number / 1000.0 if number > 1e11 else number


@dataclass(frozen=True, repr=False)
class AppToken:
    """A short-lived app token; ``expires_at`` is epoch seconds. The repr masks the token."""

    app_token: str
    expires_at: float
    strokes_session_id: str | None = None
    issued_at: float | None = None

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, issued_at: float | None = None) -> AppToken:
        return cls(
            app_token=str(body["app_token"]),
            expires_at=_expires_at_seconds(body["app_token_expires_at"]),
            strokes_session_id=body.get("strokes_session_id"),
            issued_at=issued_at,
        )

    @property
    def headers(self) -> dict[str, str]:
        """The headers that authenticate a request with this token."""
        return {"app_token": self.app_token}

    def __str__(self) -> str:
        return repr(self)

    def __repr__(self) -> str:
        return f"AppToken(app_token='***', expires_at={self.expires_at:.0f})"
