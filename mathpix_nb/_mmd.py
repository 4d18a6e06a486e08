r"""Mathpix Markdown (MMD) text rules: where math is, plain-text rendering, math-aware chunks.

One regex says where math is (:data:`MATH`: ``$$…$$``, ``\[…\]``, ``\(…\)``, ``$…$``); the
Markdown conversion of results (``_models.to_markdown``), the notebook renderer, the RAG
loaders' ``"text"`` output and the chunker all use it, so they agree on what is math.

:func:`split_mmd` cuts MMD into chunks of at most ``chunk_size`` (by ``length``) and never
inside math, a LaTeX environment (``tabular``, ``align``, ...), a pipe table or a code fence;
a section heading always stays with the text that follows it. A piece that cannot be cut and
is longer than ``chunk_size`` becomes one chunk of its own (never a cut piece).
:func:`unbalanced` says whether a text holds a math delimiter or an environment without its
partner (what a chunk must never hold).

I/O-free and dependency-free: the LangChain splitter and the LlamaIndex reader build on it.

Static Markdown (:func:`to_static_markdown`), for viewers that have no Mathpix renderer.

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

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from ._tables import Table, braced, find_tabulars

__all__ = [
    "MATH",
    "RAW_ENVIRONMENT",
    "Chunk",
    "math_spans",
    "mmd_to_text",
    "result_mmd",
    "split_mmd",
    "to_static_markdown",
    "unbalanced",
]

# $x$ is math when no space follows the opening or precedes the closing $, and no digit follows
# it (the rule of Mathpix's renderer); "costs $5 and $6" stays prose.
_INLINE_DOLLAR_RULE = r"\$(?=\S)(?P<i2>[^$\n]+?)(?<=\S)(?<!\\)\$(?!\d)"

# Display math first so "$$" is never read as two empty inline spans.
MATH = re.compile(
    r"\$\$(?P<d1>.+?)\$\$"
    r"|\\\[(?P<d2>.+?)\\\]"
    r"|\\\((?P<i1>.+?)\\\)"
    r"|(?<![\\$])" + _INLINE_DOLLAR_RULE,
    re.DOTALL,
)
r"""Math in MMD. Groups: ``d1`` (``$$``), ``d2`` (``\[``), ``i1`` (``\(``), ``i2`` (``$``)."""


def math_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every math span in ``text``, in order."""
    return [m.span() for m in MATH.finditer(text)]


# -- plain text ------------------------------------------------------------------------------

_LATEX_WRAPPERS = re.compile(
    r"\\(?:title|author|section|subsection|subsubsection|textbf|textit|emph|underline)\*?"
    r"\{([^{}]*)\}"
)
_ENVIRONMENT_MARKERS = re.compile(r"\\(?:begin|end)\{(?:abstract|center|itemize|enumerate)\}\n?")
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\([^)]*\)")
_HEADING_MARK = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITEM = re.compile(r"^\s*\\item\s*", re.MULTILINE)
_ESCAPES = re.compile(r"\\([$%&#_])")


def _unwrap_math(match: re.Match[str]) -> str:
    for group in ("d1", "d2", "i1", "i2"):
        inner = match.group(group)
        if inner is not None:
            return inner
    return match.group(0)  # pragma: no cover - one group always matches


def mmd_to_text(mmd: str) -> str:
    r"""Strip Mathpix Markdown down to plain text, keeping math as bare LaTeX.

    >>> mmd_to_text(r"# Title" "\n" r"Area is \( \pi r^2 \) and **bold**")
    'Title\nArea is  \\pi r^2  and bold'
    >>> mmd_to_text(r"\section*{Intro}" "\n" r"$$E=mc^2$$ see [docs](https://x.y)")
    'Intro\nE=mc^2 see docs'
    >>> mmd_to_text(r"It costs \$5 or 10\%")
    'It costs $5 or 10%'
    """
    text = _IMAGE_LINK.sub(r"\1", mmd)
    text = _LINK.sub(r"\1", text)
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _ENVIRONMENT_MARKERS.sub("", text)
    text = _ITEM.sub("- ", text)
    text = _HEADING_MARK.sub("", text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    text = MATH.sub(_unwrap_math, text)
    text = _ESCAPES.sub(r"\1", text)
    return text.strip()


# -- structure -------------------------------------------------------------------------------

_HEADING = re.compile(
    r"^(?:(?P<hashes>#{1,6})\s+(?P<md>\S.*?)\s*"
    r"|\\(?P<cmd>title|chapter|section|subsection|subsubsection)\*?\{(?P<tex>.*)\}\s*)$"
)
_HEADING_LEVELS = {"title": 0, "chapter": 1, "section": 1, "subsection": 2, "subsubsection": 3}
_ENV_TOKEN = re.compile(r"\\(begin|end)\{([A-Za-z]+\*?)\}")
_DELIMITER = re.compile(r"\$\$|\\\[|\\\]|\\\(|\\\)|(?<!\\)\$")
_SENTENCE_END = frozenset(".!?;:")


@dataclass(frozen=True)
class Chunk:
    """One piece of MMD: its text, where it starts in the input, and its section path."""

    text: str
    start: int
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Heading:
    start: int
    end: int
    level: int
    title: str


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line without its newline."""
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _blocks(text: str) -> tuple[list[tuple[int, int]], list[_Heading]]:
    """Atomic block spans (display math, environments, pipe tables, code fences) and headings.

    A block starts at the beginning of a line; everything else is paragraph text, where the
    inline math spans are protected separately.
    """
    lines = _line_spans(text)
    atoms: list[tuple[int, int]] = []
    headings: list[_Heading] = []
    i = 0
    while i < len(lines):
        start, end = lines[i]
        line = text[start:end]
        stripped = line.strip()
        close: int | None = None
        if stripped.startswith("```"):
            close = _find_line(text, lines, i + 1, lambda s: s.strip().startswith("```"))
        elif stripped.startswith("|"):
            j = i
            while j + 1 < len(lines) and text[lines[j + 1][0] : lines[j + 1][1]].strip().startswith(
                "|"
            ):
                j += 1
            close = j
        elif stripped.startswith(("$$", "\\[")):
            opener, closer = ("$$", "$$") if stripped.startswith("$$") else ("\\[", "\\]")
            rest = text.find(closer, start + line.index(opener) + len(opener))
            close = _line_of(lines, rest) if rest >= 0 else None
        elif stripped.startswith("\\begin{"):
            close = _environment_end(text, lines, i)
        else:
            heading = _HEADING.match(stripped)
            if heading is not None:
                if heading.group("hashes"):
                    level, title = len(heading.group("hashes")), heading.group("md")
                else:
                    level = _HEADING_LEVELS[heading.group("cmd")]
                    title = heading.group("tex")
                headings.append(_Heading(start, end, level, title.strip()))
        if close is not None:
            atoms.append((start, lines[close][1]))
            i = close + 1
            continue
        i += 1
    return atoms, headings


def _find_line(
    text: str, lines: list[tuple[int, int]], first: int, test: Callable[[str], bool]
) -> int | None:
    for j in range(first, len(lines)):
        if test(text[lines[j][0] : lines[j][1]]):
            return j
    return None


def _line_of(lines: list[tuple[int, int]], pos: int) -> int:
    starts = [s for s, _ in lines]
    return bisect.bisect_right(starts, pos) - 1


def _environment_end(text: str, lines: list[tuple[int, int]], first: int) -> int | None:
    """The line where the environment opened on line ``first`` closes (nesting counted)."""
    depth = 0
    for match in _ENV_TOKEN.finditer(text, lines[first][0]):
        depth += 1 if match.group(1) == "begin" else -1
        if depth == 0:
            return _line_of(lines, match.start())
    return None  # never closed: leave it to the paragraph rules


def _protected(
    text: str,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[_Heading]]:
    """Sorted, merged spans where no cut may fall, the atomic blocks, and the headings."""
    atoms, headings = _blocks(text)
    spans = [*atoms, *((h.start, h.end) for h in headings)]  # a heading line is never cut
    pos = 0
    for start, end in [*atoms, (len(text), len(text))]:
        spans.extend((pos + s, pos + e) for s, e in math_spans(text[pos:start]))
        pos = end
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged, atoms, headings


def _cuts(text: str) -> tuple[list[int], list[int], list[_Heading]]:
    """Allowed cut positions (start of a whitespace run) with their priority.

    4: before a heading; 3: between blocks (blank line, or next to a block); 2: line break;
    1: after a sentence; 0: between words. Never inside a protected span, never between a
    heading and its text.
    """
    spans, atoms, headings = _protected(text)
    starts = [s for s, _ in spans]
    heading_ends = {h.end for h in headings}
    heading_starts = {h.start for h in headings}
    atom_edges = {e for _, e in atoms} | {s for s, _ in atoms}
    positions: list[int] = []
    priorities: list[int] = []
    for match in re.finditer(r"\s+", text):
        s, e = match.span()
        k = bisect.bisect_right(starts, s) - 1
        if k >= 0 and s < spans[k][1]:
            continue  # inside math, a table or an environment
        if s in heading_ends or e >= len(text) or s == 0:
            continue
        run = match.group(0)
        if e in heading_starts:
            prio = 4
        elif "\n\n" in run or (("\n" in run) and (s in atom_edges or e in atom_edges)):
            prio = 3
        elif "\n" in run:
            prio = 2
        elif text[s - 1] in _SENTENCE_END:
            prio = 1
        else:
            prio = 0
        positions.append(s)
        priorities.append(prio)
    return positions, priorities, headings


def _section_at(headings: list[_Heading], pos: int) -> tuple[str, ...]:
    path: list[_Heading] = []
    for heading in headings:
        if heading.start > pos:
            break
        while path and path[-1].level >= heading.level:
            path.pop()
        path.append(heading)
    return tuple(h.title for h in path)


def split_mmd(
    text: str,
    chunk_size: int = 1000,
    chunk_overlap: int = 0,
    length: Callable[[str], int] = len,
) -> list[Chunk]:
    r"""Chunks of at most ``chunk_size`` that never cut math, tables, environments or code,
    and never part a heading from its text; ``chunk_overlap`` repeats whole pieces only.

    The chunk ends at the last cut that fits, of the best kind present (a section break over a
    blank line over a line break over a sentence over a word), like LangChain's recursive
    splitter with ``"\n\n"``, ``"\n"``, ``". "``, ``" "``.

    >>> [c.text for c in split_mmd(r"## A" "\n" r"Let \( x + y \) be. Then \[ x = 1 \] ok.", 20)]
    ['## A\nLet \\( x + y \\)', 'be. Then \\[ x = 1 \\]', 'ok.']
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}.")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"chunk_overlap must be at least 0 and below chunk_size ({chunk_size}), "
            f"got {chunk_overlap!r}."
        )
    positions, priorities, headings = _cuts(text)
    bounds = [0, *positions, len(text)]
    prios = [5, *priorities, 5]
    chunks: list[Chunk] = []
    first = 0  # index into bounds of the chunk's start
    done = 0  # index into bounds of the previous chunk's end
    final = len(bounds) - 1
    while first < final:
        start = bounds[first]
        # furthest bound that still fits (length grows with the end: binary search)
        lo, hi = first + 1, final
        fit = first  # none fits yet
        while lo <= hi:
            mid = (lo + hi) // 2
            if length(text[start : bounds[mid]].strip()) <= chunk_size:
                fit, lo = mid, mid + 1
            else:
                hi = mid - 1
        if fit <= done and first < done:
            first = done  # the overlap leaves no room for the next piece: drop it
            continue
        if fit == first:
            end_index = first + 1  # one piece longer than chunk_size: keep it whole
        elif fit == final:
            end_index = fit
        else:
            end_index = _best_cut(
                text, bounds, prios, start, max(first, done) + 1, fit, chunk_size, length
            )
        end = bounds[end_index]
        piece = text[start:end]
        body = piece.strip()
        if body:
            offset = start + (len(piece) - len(piece.lstrip()))
            chunks.append(Chunk(body, offset, _section_at(headings, offset)))
        done = end_index
        if end_index >= final:
            break
        nxt = end_index
        if chunk_overlap and prios[end_index] < 4:
            # start earlier, at the earliest bound whose tail fits in the overlap (never
            # across a section break: a new section starts clean)
            sections = [k for k in range(first + 1, end_index) if prios[k] >= 4]
            for k in range(max([first + 1, *sections]), end_index):
                if length(text[bounds[k] : end].strip()) <= chunk_overlap:
                    nxt = k
                    break
        first = nxt
    return chunks


def _best_cut(
    text: str,
    bounds: list[int],
    prios: list[int],
    start: int,
    lo: int,
    hi: int,
    chunk_size: int,
    length: Callable[[str], int],
) -> int:
    """Where a chunk that may end at ``bounds[lo..hi]`` ends.

    Blocks first, as a recursive splitter does: the furthest section break if the chunk is a
    quarter full there, else the furthest block break. Inside a paragraph: the furthest line
    break, else sentence end, where the chunk is at least half full; else the furthest word.
    """

    def fill(k: int) -> float:
        return length(text[start : bounds[k]].strip()) / chunk_size

    ks = range(hi, lo - 1, -1)  # furthest first
    sections = [k for k in ks if prios[k] >= 4]
    if sections and fill(sections[0]) >= 0.25:
        return sections[0]
    for level, least in ((3, 0.0), (2, 0.5), (1, 0.5)):
        found = next((k for k in ks if prios[k] >= level), None)
        if found is not None and fill(found) >= least:
            return found
    return hi


def unbalanced(text: str) -> str | None:
    r"""What is unbalanced in ``text`` (a math delimiter or an environment without its
    partner), or None when everything that opens also closes.

    >>> unbalanced(r"a \( x \) b") is None
    True
    >>> unbalanced(r"a \[ x")
    "math delimiter '\\\\['"
    >>> unbalanced(r"\begin{tabular}{l} x")
    'environment tabular'
    """
    rest = MATH.sub(" ", text.replace(r"\$", ""))
    stray = _DELIMITER.search(rest)
    if stray is not None:
        return f"math delimiter {stray.group(0)!r}"
    stack: list[str] = []
    for match in _ENV_TOKEN.finditer(text):
        kind, name = match.groups()
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            return f"environment {name}"
    if stack:
        return f"environment {stack[-1]}"
    return None


# -- static Markdown for viewers without Mathpix's renderer --------------------


#: An environment left outside math (what static viewers show broken). Tests use it.
RAW_ENVIRONMENT = re.compile(r"\\begin\{[^}]*\}")

_SLOT = "\x00{}\x00"
_INLINE_DOLLAR = re.compile(_INLINE_DOLLAR_RULE)
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
    text = re.sub(r"\n\n[ \t]+(?=\S)", "\n\n", text)  # a paragraph never starts with a space
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
