"""Turn Mathpix Markdown into HTML the panel can show without a Markdown engine in the page.

Why in Python: JupyterLab 4 does not expose a global MathJax or Markdown renderer to widgets,
and the panel must look the same in JupyterLab, Notebook 7 and VS Code. So the kernel renders
a small, safe subset of Markdown (every character of OCR text is HTML-escaped) and turns each
math span into MathML, which browsers draw natively. When ``latex2mathml`` is not installed
(or cannot parse a formula) the TeX is kept, marked ``mpx-tex``, so a page that has MathJax
can still typeset it; otherwise it stays readable as TeX.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .._mmd import MATH

__all__ = ["markdown_to_html", "render_result_html"]

_MATH = MATH  # the one MMD math rule (mathpix_nb._mmd)
_SLOT = "\x00{}\x00"
_SLOT_RE = re.compile("\x00(\\d+)\x00")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LATEX_HEADING = re.compile(r"^\\(title|section|subsection|subsubsection)\*?\{(.*)\}\s*$")
_LATEX_LEVEL = {"title": 1, "section": 2, "subsection": 3, "subsubsection": 4}
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_CODE = re.compile(r"`([^`]+)`")


def _math_html(tex: str, display: bool) -> str:
    """One formula as MathML (if latex2mathml can do it) or as marked, escaped TeX."""
    tex = tex.strip()
    mode = "block" if display else "inline"
    try:
        from latex2mathml.converter import convert

        mathml = convert(tex, display=mode)
    except Exception:  # not installed, or a construct it does not know: keep the TeX
        delims = ("\\[", "\\]") if display else ("\\(", "\\)")
        body = html.escape(f"{delims[0]}{tex}{delims[1]}")
        return f'<span class="mpx-math mpx-tex mpx-{mode}">{body}</span>'
    return f'<span class="mpx-math mpx-{mode}" data-tex="{html.escape(tex)}">{mathml}</span>'


def _inline(text: str) -> str:
    """Escape one run of non-math text and apply inline Markdown (code, bold, italic)."""
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _ITALIC.sub(r"<em>\1</em>", out)


def markdown_to_html(markdown: str) -> str:
    """Render Mathpix Markdown (text with ``$``/``$$``/``\\(``/``\\[`` math) to safe HTML.

    >>> markdown_to_html("**Area** of a disc")
    '<p><strong>Area</strong> of a disc</p>'
    >>> "<math" in markdown_to_html("$x^2$") or "mpx-tex" in markdown_to_html("$x^2$")
    True
    """
    maths: list[str] = []

    def stash(m: re.Match[str]) -> str:
        display = m.group("d1") is not None or m.group("d2") is not None
        tex = next(g for g in m.group("d1", "d2", "i1", "i2") if g is not None)
        maths.append(_math_html(tex, display))
        return _SLOT.format(len(maths) - 1)

    text = _MATH.sub(stash, markdown.replace("\r\n", "\n"))
    blocks: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = ""
    in_code = False
    code: list[str] = []

    def flush() -> None:
        nonlocal list_tag
        if para:
            blocks.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
            para.clear()
        if items:
            inner = "".join(f"<li>{_inline(i)}</li>" for i in items)
            blocks.append(f"<{list_tag}>{inner}</{list_tag}>")
            items.clear()
            list_tag = ""

    for line in text.split("\n"):
        if line.strip().startswith("```"):
            if in_code:
                blocks.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
                code.clear()
            else:
                flush()
            in_code = not in_code
            continue
        if in_code:
            code.append(line)
            continue
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        heading = _HEADING.match(stripped)
        latex_heading = _LATEX_HEADING.match(stripped)
        if heading or latex_heading:
            flush()
            if heading:
                level, body = len(heading.group(1)), heading.group(2)
            else:
                assert latex_heading is not None
                level = _LATEX_LEVEL[latex_heading.group(1)]
                body = latex_heading.group(2)
            blocks.append(f"<h{level + 2}>{_inline(body)}</h{level + 2}>")
            continue
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if bullet or numbered:
            tag = "ul" if bullet else "ol"
            if para or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
            continue
        if items:
            flush()
        para.append(stripped)
    if in_code:  # an unclosed fence: show what we have
        blocks.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
    flush()
    rendered = "\n".join(blocks)
    return _SLOT_RE.sub(lambda m: maths[int(m.group(1))], rendered)


def _result_markdown(result: Any) -> str:
    """The result as Mathpix Markdown, whatever formats were asked for."""
    try:
        md = result.markdown()
    except Exception:
        md = None
    if md:
        return str(md)
    latex = getattr(result, "latex_styled", None)
    if latex:
        return f"$$\n{latex}\n$$"
    return str(getattr(result, "text", "") or "")


def render_result_html(result: Any) -> str:
    """The rendered view of an ``OcrResult`` (escaped text, MathML math)."""
    md = _result_markdown(result)
    if not md.strip():
        return '<p class="mpx-empty">(no text in this result)</p>'
    return markdown_to_html(md)
