"""Mathpix Markdown (MMD) as a list of blocks, and the text formats made from it.

The conversion writers (``_office``, ``_pdfdoc``, ``_convert``) all start from ``parse_mmd``:
headings (``#`` and ``\\title`` / ``\\section`` / ...), paragraphs with inline math
(``\\( .. \\)``, ``$ .. $``), bold / italic / code, display math (``\\[ .. \\]``, ``$$``,
``equation``-like environments), tables (Markdown pipes and ``tabular``), lists (Markdown and
``itemize`` / ``enumerate``), code fences, images and page breaks. What it does not know
becomes a paragraph, so no text is ever dropped.

``to_markdown``, ``to_latex`` and ``to_html`` render the blocks back as text formats.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

#: (kind, value): kind is "text", "math", "bold", "italic" or "code"
Inline = tuple[str, str]


@dataclass
class Block:
    """One block of a document. ``kind`` is ``title``, ``heading`` (``level`` 1..6),
    ``para``, ``math`` (``text`` = LaTeX, without delimiters), ``table`` (``rows`` of
    cells of inlines), ``list`` (``items``, ``ordered``), ``code`` (``text``), ``image``
    (``text`` = URL, ``alt``) or ``pagebreak``."""

    kind: str
    level: int = 0
    inlines: list[Inline] = field(default_factory=list)
    rows: list[list[list[Inline]]] = field(default_factory=list)
    items: list[list[Inline]] = field(default_factory=list)
    ordered: bool = False
    text: str = ""
    alt: str = ""

    def plain(self) -> str:
        """The block as one line of plain text (math as its LaTeX)."""
        if self.kind in ("math", "code", "image"):
            return self.alt or self.text
        if self.kind == "table":
            return "\n".join("\t".join(plain(c) for c in row) for row in self.rows)
        if self.kind == "list":
            return "\n".join(plain(i) for i in self.items)
        return plain(self.inlines)


def plain(inlines: list[Inline]) -> str:
    return "".join(value for _, value in inlines)


_INLINE = re.compile(
    r"\\\((?P<m1>.+?)\\\)"
    r"|(?<![\\$])\$(?!\$)(?P<m2>[^$]+?)(?<!\\)\$"
    r"|\*\*(?P<b1>.+?)\*\*"
    r"|\\textbf\{(?P<b2>[^{}]*)\}"
    r"|\\(?:textit|emph)\{(?P<i1>[^{}]*)\}"
    r"|(?<![\w*])\*(?!\s)(?P<i2>[^*]+?)(?<!\s)\*(?![\w*])"
    r"|`(?P<c>[^`]+)`",
    re.DOTALL,
)


def parse_inlines(text: str) -> list[Inline]:
    """Split a paragraph's text into runs: text, math, bold, italic, code."""
    out: list[Inline] = []
    pos = 0
    for match in _INLINE.finditer(text):
        if match.start() > pos:
            out.append(("text", text[pos : match.start()]))
        groups = match.groupdict()
        for name, kind in (
            ("m1", "math"),
            ("m2", "math"),
            ("b1", "bold"),
            ("b2", "bold"),
            ("i1", "italic"),
            ("i2", "italic"),
            ("c", "code"),
        ):
            if groups[name] is not None:
                value = groups[name].strip() if kind == "math" else groups[name]
                out.append((kind, value))
                break
        pos = match.end()
    if pos < len(text):
        out.append(("text", text[pos:]))
    return [
        (kind, _UNESCAPE.sub(r"\1", value) if kind == "text" else value)
        for kind, value in out
        if value
    ]


_UNESCAPE = re.compile(r"\\([$%&_#{}])")


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LATEX_HEADING = re.compile(
    r"^\\(title|section|subsection|subsubsection|paragraph)\*?\{(.*)\}\s*$", re.DOTALL
)
_LATEX_LEVEL = {"section": 1, "subsection": 2, "subsubsection": 3, "paragraph": 4}
_MATH_ENV = re.compile(
    r"^\\begin\{(equation|align|gather|multline|eqnarray|alignat|flalign|displaymath)(\*?)\}"
)
_WRAPPER = re.compile(
    r"^\\(?:begin|end)\{(?:table|figure|center|abstract|document|flushleft|flushright)\*?\}"
    r"(?:\[[^\]]*\])?\s*$"
)
_LIST_ITEM = re.compile(r"^(?:([-*+])|(\d+)[.)])\s+(.*)$")
_IMAGE = re.compile(r"^!\[(.*?)\]\((\S*?)(?:\s+\"[^\"]*\")?\)$")
_INCLUDE = re.compile(r"^\\includegraphics(?:\[[^\]]*\])?\{(.*?)\}$")
_TABLE_SEP = re.compile(r"^:?-{2,}:?$")


def _md_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


def _latex_cell(cell: str) -> str:
    cell = cell.strip()
    multi = re.match(r"^\\multi(?:column|row)\{[^}]*\}\{[^}]*\}\{(.*)\}$", cell, re.DOTALL)
    if multi:
        cell = multi.group(1)
    return cell.replace("\\&", "&").strip()


def _tabular_rows(body: str) -> list[list[str]]:
    body = re.sub(r"^\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", "", body, count=1)  # column spec
    rows = []
    for raw in re.split(r"\\\\(?:\[[^\]]*\])?", body):
        raw = re.sub(r"\\(?:hline|toprule|midrule|bottomrule)|\\cline\{[^}]*\}", "", raw)
        if not raw.strip():
            continue
        rows.append([_latex_cell(c) for c in re.split(r"(?<!\\)&", raw)])
    return rows


def _collect(lines: list[str], i: int, end: str) -> tuple[list[str], int]:
    """Lines from ``i`` up to and including the first that contains ``end``."""
    taken = []
    while i < len(lines):
        taken.append(lines[i])
        i += 1
        if end in taken[-1]:
            break
    return taken, i


def parse_mmd(mmd: str) -> list[Block]:
    """The blocks of an MMD document (never raises: unknown syntax becomes paragraphs)."""
    lines = mmd.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", inlines=parse_inlines(" ".join(para))))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        st = line.strip()
        if not st:
            flush()
            i += 1
            continue
        if st.startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", text="\n".join(code)))
            i += 1
            continue
        heading = _HEADING.match(st)
        if heading:
            flush()
            level = len(heading.group(1))
            blocks.append(Block("heading", level=level, inlines=parse_inlines(heading.group(2))))
            i += 1
            continue
        latex_heading = _LATEX_HEADING.match(st)
        if latex_heading:
            flush()
            kind, text = latex_heading.groups()
            if kind == "title":
                blocks.append(Block("title", level=1, inlines=parse_inlines(text)))
            else:
                blocks.append(
                    Block("heading", level=_LATEX_LEVEL[kind], inlines=parse_inlines(text))
                )
            i += 1
            continue
        if st.startswith("\\[") or st.startswith("$$"):
            flush()
            opener, closer = ("\\[", "\\]") if st.startswith("\\[") else ("$$", "$$")
            first = st[len(opener) :]
            taken = [first]
            i += 1
            if closer not in first:
                while i < len(lines) and closer not in lines[i]:
                    taken.append(lines[i])
                    i += 1
                if i < len(lines):
                    taken.append(lines[i])
                    i += 1
            text = "\n".join(taken)
            cut = text.rfind(closer)
            latex, rest = (text[:cut], text[cut + len(closer) :]) if cut >= 0 else (text, "")
            blocks.append(Block("math", text=latex.strip()))
            if rest.strip():
                para.append(rest.strip())
            continue
        env = _MATH_ENV.match(st)
        if env:
            flush()
            end = f"\\end{{{env.group(1)}{env.group(2)}}}"
            taken, i = _collect(lines, i, end)
            blocks.append(Block("math", text="\n".join(taken).strip()))
            continue
        if st.startswith("\\begin{tabular"):
            flush()
            taken, i = _collect(lines, i, "\\end{tabular}")
            body = "\n".join(taken)
            body = body[body.index("}") + 1 :] if "}" in body else body
            body = body.replace("\\end{tabular}", "")
            rows = [[parse_inlines(c) for c in row] for row in _tabular_rows(body)]
            blocks.append(Block("table", rows=rows))
            continue
        if re.match(r"^\\begin\{(itemize|enumerate)\}", st):
            flush()
            ordered = "enumerate" in st
            end = "\\end{enumerate}" if ordered else "\\end{itemize}"
            taken, i = _collect(lines, i, end)
            text = "\n".join(taken)
            text = re.sub(r"^\\begin\{\w+\}", "", text.strip()).replace(end, "")
            items = [parse_inlines(" ".join(p.split())) for p in text.split("\\item") if p.strip()]
            blocks.append(Block("list", items=items, ordered=ordered))
            continue
        if _WRAPPER.match(st) or st.startswith("\\caption{") or st.startswith("\\label{"):
            i += 1
            continue
        if st.startswith("|"):
            flush()
            rows_md = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = _md_cells(lines[i])
                if not all(_TABLE_SEP.match(c) for c in cells if c):
                    rows_md.append([parse_inlines(c) for c in cells])
                i += 1
            blocks.append(Block("table", rows=rows_md))
            continue
        item = _LIST_ITEM.match(st)
        if item and not para:
            ordered = item.group(2) is not None
            entries = []
            while i < len(lines):
                found = _LIST_ITEM.match(lines[i].strip())
                if found is None or (found.group(2) is not None) != ordered:
                    break
                entries.append(parse_inlines(found.group(3)))
                i += 1
            blocks.append(Block("list", items=entries, ordered=ordered))
            continue
        image = _IMAGE.match(st) or _INCLUDE.match(st)
        if image:
            flush()
            if image.re is _IMAGE:
                blocks.append(Block("image", text=image.group(2), alt=image.group(1)))
            else:
                blocks.append(Block("image", text=image.group(1), alt=""))
            i += 1
            continue
        if st in ("\\newpage", "\\pagebreak", "\\clearpage"):
            flush()
            blocks.append(Block("pagebreak"))
            i += 1
            continue
        para.append(st)
        i += 1
    flush()
    return blocks


def title_of(blocks: list[Block], default: str) -> str:
    for block in blocks:
        if block.kind in ("title", "heading"):
            return plain(block.inlines).strip() or default
    return default


# --------------------------------------------------------------------------- Markdown


def _md_inline(inlines: list[Inline]) -> str:
    out = []
    for kind, value in inlines:
        if kind == "math":
            out.append(f"${value}$")
        elif kind == "bold":
            out.append(f"**{value}**")
        elif kind == "italic":
            out.append(f"*{value}*")
        elif kind == "code":
            out.append(f"`{value}`")
        else:
            out.append(value)
    return "".join(out)


def to_markdown(blocks: list[Block]) -> str:
    """Plain Markdown (math as ``$ .. $`` / ``$$ .. $$``, LaTeX headings as ``#``)."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "title":
            parts.append("# " + _md_inline(block.inlines))
        elif block.kind == "heading":
            parts.append("#" * max(1, min(6, block.level)) + " " + _md_inline(block.inlines))
        elif block.kind == "para":
            parts.append(_md_inline(block.inlines))
        elif block.kind == "math":
            parts.append(f"$$\n{block.text}\n$$")
        elif block.kind == "table" and block.rows:
            width = max(len(r) for r in block.rows)
            rows = [[_md_inline(c) for c in r] + [""] * (width - len(r)) for r in block.rows]
            lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
            lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            parts.append("\n".join(lines))
        elif block.kind == "list":
            parts.append(
                "\n".join(
                    (f"{n}. " if block.ordered else "- ") + _md_inline(item)
                    for n, item in enumerate(block.items, start=1)
                )
            )
        elif block.kind == "code":
            parts.append(f"```\n{block.text}\n```")
        elif block.kind == "image":
            parts.append(f"![{block.alt}]({block.text})")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- LaTeX

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_inline(inlines: list[Inline]) -> str:
    out = []
    for kind, value in inlines:
        if kind == "math":
            out.append(f"\\({value}\\)")
        elif kind == "bold":
            out.append(f"\\textbf{{{tex_escape(value)}}}")
        elif kind == "italic":
            out.append(f"\\textit{{{tex_escape(value)}}}")
        elif kind == "code":
            out.append(f"\\texttt{{{tex_escape(value)}}}")
        else:
            out.append(tex_escape(value))
    return "".join(out)


TEX_PREAMBLE = (
    "\\documentclass[10pt]{article}\n"
    "\\usepackage[utf8]{inputenc}\n"
    "\\usepackage[T1]{fontenc}\n"
    "\\usepackage{amsmath}\n"
    "\\usepackage{amsfonts}\n"
    "\\usepackage{amssymb}\n"
    "\\usepackage[version=4]{mhchem}\n"
    "\\usepackage{stmaryrd}\n"
    "\\usepackage{graphicx}\n"
    "\\usepackage[export]{adjustbox}\n"
    "\\graphicspath{ {./images/} }\n"
)


def to_latex(blocks: list[Block]) -> str:
    """A complete LaTeX document (``article``), compilable with pdflatex."""
    body: list[str] = []
    commands = {1: "section", 2: "subsection", 3: "subsubsection"}
    for block in blocks:
        if block.kind == "title":
            body.append(f"\\title{{{_tex_inline(block.inlines)}}}\n\\maketitle")
        elif block.kind == "heading":
            command = commands.get(block.level, "paragraph")
            body.append(f"\\{command}*{{{_tex_inline(block.inlines)}}}")
        elif block.kind == "para":
            body.append(_tex_inline(block.inlines))
        elif block.kind == "math":
            text = block.text
            body.append(text if text.startswith("\\begin{") else f"\\[\n{text}\n\\]")
        elif block.kind == "table" and block.rows:
            width = max(len(r) for r in block.rows)
            rows = [
                " & ".join(_tex_inline(c) for c in r + [[]] * (width - len(r))) + " \\\\"
                for r in block.rows
            ]
            spec = "|" + "l|" * width
            lines = "\n\\hline\n".join(rows)
            body.append(
                f"\\begin{{tabular}}{{{spec}}}\n\\hline\n{lines}\n\\hline\n\\end{{tabular}}"
            )
        elif block.kind == "list":
            env = "enumerate" if block.ordered else "itemize"
            items = "\n".join(f"\\item {_tex_inline(item)}" for item in block.items)
            body.append(f"\\begin{{{env}}}\n{items}\n\\end{{{env}}}")
        elif block.kind == "code":
            body.append(f"\\begin{{verbatim}}\n{block.text}\n\\end{{verbatim}}")
        elif block.kind == "image":
            body.append(f"% image not embedded: {block.text}")
        elif block.kind == "pagebreak":
            body.append("\\newpage")
    return TEX_PREAMBLE + "\n\\begin{document}\n" + "\n\n".join(body) + "\n\n\\end{document}\n"


# --------------------------------------------------------------------------- HTML


def math_to_mathml(latex: str, display: bool) -> str | None:
    """MathML for ``latex`` (via latex2mathml, when installed), else None."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        return None
    try:
        return str(convert(latex, display="block" if display else "inline"))
    except Exception:  # latex2mathml raises many types on LaTeX it does not know
        return None


def _html_math(latex: str, display: bool) -> str:
    mathml = math_to_mathml(latex, display)
    if mathml is not None:
        return mathml
    tag = "div" if display else "span"
    left, right = ("\\[", "\\]") if display else ("\\(", "\\)")
    return f'<{tag} class="math">{html.escape(left + latex + right)}</{tag}>'


def _html_inline(inlines: list[Inline]) -> str:
    out = []
    for kind, value in inlines:
        if kind == "math":
            out.append(_html_math(value, False))
        elif kind == "bold":
            out.append(f"<strong>{html.escape(value)}</strong>")
        elif kind == "italic":
            out.append(f"<em>{html.escape(value)}</em>")
        elif kind == "code":
            out.append(f"<code>{html.escape(value)}</code>")
        else:
            out.append(html.escape(value))
    return "".join(out)


_CSS = (
    "body{font-family:Georgia,serif;max-width:48em;margin:2em auto;line-height:1.5;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:.3em .6em}"
    "pre{background:#f4f4f4;padding:.6em;overflow:auto}.math{font-family:monospace}"
    "math[display=block]{margin:1em 0}"
)


def to_html(blocks: list[Block], title: str) -> str:
    """A standalone HTML5 page; math as MathML (browsers render it natively)."""
    parts = []
    for block in blocks:
        if block.kind == "title":
            parts.append(f'<h1 class="title">{_html_inline(block.inlines)}</h1>')
        elif block.kind == "heading":
            level = max(1, min(6, block.level + 1))
            parts.append(f"<h{level}>{_html_inline(block.inlines)}</h{level}>")
        elif block.kind == "para":
            parts.append(f"<p>{_html_inline(block.inlines)}</p>")
        elif block.kind == "math":
            parts.append(f'<div class="display-math">{_html_math(block.text, True)}</div>')
        elif block.kind == "table":
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table>{rows}</table>")
        elif block.kind == "list":
            tag = "ol" if block.ordered else "ul"
            items = "".join(f"<li>{_html_inline(i)}</li>" for i in block.items)
            parts.append(f"<{tag}>{items}</{tag}>")
        elif block.kind == "code":
            parts.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif block.kind == "image":
            parts.append(
                f'<img src="{html.escape(block.text, quote=True)}" '
                f'alt="{html.escape(block.alt, quote=True)}">'
            )
        elif block.kind == "pagebreak":
            parts.append('<div style="page-break-after:always"></div>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
