r"""Mathpix Markdown -> plain GitHub-flavoured Markdown, for viewers that have no Mathpix renderer.

Notebook front ends draw results with Mathpix's own renderer (``mathpix_nb.jupyter``). A saved
notebook on GitHub, nbviewer or a JupyterLab without the widget shows the ``text/markdown``
copy instead, so that copy must hold nothing those viewers print as broken LaTeX:

* ``\begin{tabular}`` becomes a pipe table; ``\section*{..}`` and friends become headings;
  ``itemize`` / ``enumerate`` become lists; ``\textbf`` / ``\textit`` / ``\url`` / ``\href``
  become Markdown; figure/table/center wrappers are unwrapped, ``\caption`` kept in italics;
* math is delimited with ``$`` / ``$$`` (what GitHub and JupyterLab typeset); ``align``-like
  environments become ``aligned`` inside ``$$`` (``align`` inside ``$$`` is a MathJax error);
* any other environment outside math is unwrapped (its text kept, the markup dropped);
* dollar signs of prose are escaped, ``<smiles>`` chemistry becomes code.
"""

from __future__ import annotations

import re

from ._tables import Table, braced, find_tabulars

__all__ = ["RAW_ENVIRONMENT", "result_mmd", "to_static_markdown"]

#: An environment left outside math (what static viewers show broken). Tests use it.
RAW_ENVIRONMENT = re.compile(r"\\begin\{[^}]*\}")

_SLOT = "\x00{}\x00"
# $x$ is math when no space follows the opening or precedes the closing $, and no digit follows
# it (the rule of Mathpix's renderer); "costs $5 and $6" stays prose.
_INLINE_DOLLAR = re.compile(r"\$(?=\S)([^$\n]+?)(?<=\S)\$(?!\d)")
_COMMAND = re.compile(r"\\([A-Za-z]+)(\*?)")
_SLOT_RE = re.compile("\x00(\\d+)\x00")

# Display-math environments Mathpix writes without delimiters, and what each becomes inside $$.
_MATH_ENVS = {
    "equation": None,
    "equation*": None,
    "align": "aligned",
    "align*": "aligned",
    "alignat": "alignedat",
    "alignat*": "alignedat",
    "flalign": "aligned",
    "flalign*": "aligned",
    "eqnarray": "aligned",
    "eqnarray*": "aligned",
    "gather": "gathered",
    "gather*": "gathered",
    "multline": "gathered",
    "multline*": "gathered",
    "split": "split",
    "aligned": "aligned",
    "gathered": "gathered",
    "cases": "cases",
    "array": "array",
    "matrix": "matrix",
    "pmatrix": "pmatrix",
    "bmatrix": "bmatrix",
    "Bmatrix": "Bmatrix",
    "vmatrix": "vmatrix",
    "Vmatrix": "Vmatrix",
    "smallmatrix": "smallmatrix",
    "subarray": "subarray",
}
_LISTS = {"itemize": "-", "enumerate": "1.", "description": "-"}
_HEADINGS = {
    "title": "#",
    "part": "#",
    "chapter": "#",
    "section": "##",
    "subsection": "###",
    "subsubsection": "####",
    "paragraph": "#####",
    "subparagraph": "######",
}
_LABELLED = {
    "abstract": "Abstract",
    "proof": "Proof",
    "theorem": "Theorem",
    "lemma": "Lemma",
    "corollary": "Corollary",
    "proposition": "Proposition",
    "definition": "Definition",
    "remark": "Remark",
    "example": "Example",
}
_INLINE_STYLE = {
    "textbf": "**{}**",
    "mathbf": "**{}**",
    "textit": "*{}*",
    "emph": "*{}*",
    "textsl": "*{}*",
    "texttt": "`{}`",
    "underline": "{}",
    "uline": "{}",
    "textrm": "{}",
    "textsf": "{}",
    "textup": "{}",
    "text": "{}",
    "author": "*{}*",
    "caption": "\n\n*{}*\n\n",
    "footnote": " ({})",
    "footnotetext": " ({})",
    "url": "<{}>",
    "date": "{}",
}
_DROP = re.compile(
    r"\\(maketitle|centering|raggedright|raggedleft|noindent|newpage|clearpage|hline|"
    r"toprule|midrule|bottomrule|tableofcontents|label\{[^}]*\}|vspace\*?\{[^}]*\}|"
    r"hspace\*?\{[^}]*\})"
)


def _math_body(tex: str) -> str:
    """Display math made safe for GitHub/JupyterLab MathJax: no align-in-$$, no \\label."""
    tex = re.sub(r"\\label\{[^}]*\}", "", tex)
    for env, inner in _MATH_ENVS.items():
        if inner is None or inner == env:
            continue
        tex = tex.replace(f"\\begin{{{env}}}", f"\\begin{{{inner}}}")
        tex = tex.replace(f"\\end{{{env}}}", f"\\end{{{inner}}}")
    return re.sub(r"\\(begin|end)\{equation\*?\}", "", tex).strip()


class _Converter:
    def __init__(self) -> None:
        self.slots: list[str] = []

    def slot(self, text: str) -> str:
        self.slots.append(text)
        return _SLOT.format(len(self.slots) - 1)

    def restore(self, text: str) -> str:
        for _ in range(8):  # slots may hold slots (a table cell with math)
            if "\x00" not in text:
                break
            text = _SLOT_RE.sub(lambda m: self.slots[int(m.group(1))], text)
        return text

    # -- protected pieces -------------------------------------------------------------------

    def code(self, text: str) -> str:
        return re.sub(
            r"^```.*?^```[ \t]*$",
            lambda m: self.slot(m.group(0)),
            text,
            flags=re.DOTALL | re.MULTILINE,
        )

    def tabulars(self, text: str) -> str:
        out = []
        pos = 0
        for start, end, rows in find_tabulars(text):
            out.append(text[pos:start])
            table = Table(rows, header=True, source="tabular").to_markdown()
            out.append("\n\n" + self.slot(table) + "\n\n" if table else "")
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def math(self, text: str) -> str:
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            if text.startswith("\\[", i) or text.startswith("$$", i):
                close = "\\]" if text[i] == "\\" else "$$"
                j = text.find(close, i + 2)
                if j != -1:
                    body = _math_body(text[i + 2 : j])
                    out.append(self.slot(f"\n\n$$\n{body}\n$$\n\n") if body else "")
                    i = j + 2
                    continue
            if text.startswith("\\(", i):
                j = text.find("\\)", i + 2)
                if j != -1:
                    body = " ".join(text[i + 2 : j].split())
                    out.append(self.slot(f"${body}$") if body else "")
                    i = j + 2
                    continue
            if text[i] == "$" and (i == 0 or text[i - 1] != "\\"):
                m = _INLINE_DOLLAR.match(text, i)
                if m:
                    out.append(self.slot(f"${m.group(1)}$"))
                    i = m.end()
                    continue
                out.append("\\$")
                i += 1
                continue
            if text.startswith("\\begin{", i):
                group = braced(text, i + 6)
                if group and group[0] in _MATH_ENVS:
                    env = group[0]
                    end = text.find(f"\\end{{{env}}}", group[1])
                    if end != -1:
                        stop = end + len(env) + 6
                        body = _math_body(text[i:stop])
                        out.append(self.slot(f"\n\n$$\n{body}\n$$\n\n"))
                        i = stop
                        continue
            if text.startswith("\\$", i):
                out.append(self.slot("\\$"))
                i += 2
                continue
            out.append(text[i])
            i += 1
        return "".join(out)

    # -- markup outside math ----------------------------------------------------------------

    def environments(self, text: str) -> str:
        """Lists, labelled blocks and wrappers, innermost first."""
        pattern = re.compile(r"\\begin\{([^}]*)\}((?:(?!\\begin\{)[\s\S])*?)\\end\{\1\}")
        for _ in range(50):
            m = pattern.search(text)
            if not m:
                break
            env, body = m.group(1), m.group(2)
            text = text[: m.start()] + self.environment(env, body) + text[m.end() :]
        # Whatever is left unbalanced: drop the markers, keep the words.
        return re.sub(r"\\(begin|end)\{[^}]*\}(\{[^}]*\}|\[[^\]]*\])*", "", text)

    def environment(self, env: str, body: str) -> str:
        body = re.sub(r"^(\[[^\]]*\]|\{[^}]*\})+", "", body) if env == "minipage" else body
        body = re.sub(r"^\[[^\]]*\]", "", body)  # figure[h], table[!ht]
        if env in _LISTS:
            marker = _LISTS[env]
            items = re.split(r"\\item\b(?:\[([^\]]*)\])?", body)
            lines = []
            for k in range(1, len(items), 2):
                label, item = items[k], items[k + 1]
                first, *rest = item.strip().splitlines() or [""]
                words = " ".join(first.split())
                if label:
                    words = f"**{label}** {words}"
                lines.append(f"{marker} {words}")
                # A nested list (already converted) or more lines: indented under the item.
                lines.extend("   " + line.strip() for line in rest if line.strip())
            return "\n\n" + "\n".join(lines) + "\n\n"
        if env in _LABELLED:
            return f"\n\n**{_LABELLED[env]}.** {body.strip()}\n\n"
        if env in ("quote", "quotation"):
            quoted = "\n".join("> " + line for line in body.strip().splitlines())
            return f"\n\n{quoted}\n\n"
        return f"\n\n{body.strip()}\n\n"

    def commands(self, text: str) -> str:
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            if text[i] != "\\":
                out.append(text[i])
                i += 1
                continue
            m = _COMMAND.match(text, i)
            if not m:
                out.append(text[i : i + 2])
                i += 2
                continue
            name = m.group(1)
            j = m.end()
            while j < n and text[j] == "[":  # optional arguments
                close = text.find("]", j)
                if close == -1:
                    break
                j = close + 1
            group = braced(text, j)
            if name in _HEADINGS and group:
                out.append(f"\n\n{_HEADINGS[name]} {self.commands(group[0]).strip()}\n\n")
                i = group[1]
            elif name == "href" and group:
                second = braced(text, group[1])
                label = self.commands(second[0]) if second else group[0]
                out.append(f"[{label}]({group[0]})")
                i = second[1] if second else group[1]
            elif name == "includegraphics" and group:
                out.append(f"![]({group[0]})")
                i = group[1]
            elif name in _INLINE_STYLE and group:
                inner = self.commands(group[0]).strip()
                if name == "author":
                    inner = re.sub(r"\s*(\\\\|\\and)\s*", ", ", inner)
                out.append(_INLINE_STYLE[name].format(inner) if inner else "")
                i = group[1]
            elif name == "newline":
                out.append("  \n")
                i = m.end()
            else:
                out.append(m.group(0))
                i = m.end()
        return "".join(out)


def to_static_markdown(mmd: str) -> str:
    r"""Mathpix Markdown as GitHub-flavoured Markdown with ``$``/``$$`` math (no raw LaTeX blocks).

    >>> to_static_markdown(r"\section*{Area} of \( \pi r^2 \) costs $5")
    '## Area\n\nof $\\pi r^2$ costs \\$5'
    """
    conv = _Converter()
    text = mmd.replace("\r\n", "\n")
    text = conv.code(text)
    text = conv.tabulars(text)
    text = conv.math(text)
    text = re.sub(
        r"<smiles[^>]*>(.*?)</smiles>", lambda m: conv.slot(f"`{m.group(1)}`"), text, flags=re.S
    )
    text = _DROP.sub("", text)
    text = conv.environments(text)
    text = conv.commands(text)
    text = re.sub(r"\\\\[ \t]*(\n|$)", "  \n", text)  # a forced line break
    text = conv.restore(text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def result_mmd(result: object) -> str:
    r"""The Mathpix Markdown a result is shown as, whatever formats were asked for.

    ``OcrResult``: its ``text``, else its ``latex_styled`` as display math; ``PdfResult``: its
    ``mmd``, else its ``md``; anything else: ``str()``.
    """
    if hasattr(result, "pdf_id"):
        for name in ("mmd", "md"):
            value = getattr(result, name, None)
            if value:
                return str(value)
        return ""
    text = getattr(result, "text", None)
    if text:
        return str(text)
    latex = getattr(result, "latex_styled", None)
    if latex:
        return f"\\[\n{latex}\n\\]"
    return "" if hasattr(result, "raw") else str(result)
