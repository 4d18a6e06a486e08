r"""Tables in OCR results, as rows of text and as pandas DataFrames.

Where a table comes from, best first: what the API computed (``data`` entries of type ``tsv``
or ``table_html``, an ``html`` answer or a PDF's ``html`` output), else the Mathpix Markdown
itself (``\begin{tabular}`` blocks and pipe tables), read here without any renderer. Cells stay
text; math in a cell keeps its TeX as ``$...$``. ``Table.to_frame()`` (pandas, optional) turns
columns whose every cell is a number into numbers.

The same parser feeds the static Markdown view (``_mmd.py``), so a table reads the same in a
DataFrame, in a GitHub preview and in the copy-as-CSV button.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Table",
    "extract_tables",
    "find_tabulars",
    "html_tables",
    "markdown_tables",
    "mmd_tables",
    "parse_tabular",
    "tables_to_frames",
    "tsv_table",
]

PANDAS_HINT = "result.tables() returns pandas DataFrames: pip install 'mathpix_nb[pandas]'"


@dataclass(frozen=True)
class Table:
    """One table: ``rows`` of cell text; ``header`` says the first row names the columns."""

    rows: list[list[str]]
    header: bool = False
    source: str = "tabular"  # tsv | html | tabular | markdown
    columns: int = field(init=False)

    def __post_init__(self) -> None:
        width = max((len(r) for r in self.rows), default=0)
        padded = [list(r) + [""] * (width - len(r)) for r in self.rows]
        object.__setattr__(self, "rows", padded)
        object.__setattr__(self, "columns", width)

    @property
    def shape(self) -> tuple[int, int]:
        """(data rows, columns), as a DataFrame of this table would have."""
        return (len(self.rows) - (1 if self.header else 0), self.columns)

    def to_csv(self) -> str:
        """The table as CSV text (header row first when there is one)."""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(self.rows)
        return out.getvalue()

    def to_markdown(self) -> str:
        """A GitHub pipe table (the first row is the header: pipe tables need one)."""
        if not self.rows or not self.columns:
            return ""

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(_pipe_cell(c) for c in cells) + " |"

        head, *body = self.rows
        return "\n".join([line(head), "|" + "---|" * self.columns, *(line(r) for r in body)])

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame (numbers where a whole column is numeric). Needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(PANDAS_HINT) from None
        if self.header and self.rows:
            names = _unique_names(self.rows[0])
            frame = pd.DataFrame(self.rows[1:], columns=names, dtype=object)
        else:
            frame = pd.DataFrame(self.rows, dtype=object)
        for name in frame.columns:
            frame[name] = _maybe_numeric(pd, frame[name])
        frame.attrs["mathpix_source"] = self.source
        return frame


_CELL_MATH = re.compile(r"\$(?=\S)[^$\n]+?(?<=\S)\$(?!\d)")


def _pipe_cell(text: str) -> str:
    """A cell for a pipe table: one line, ``|`` escaped, a dollar of prose escaped (not math)."""
    text = " ".join(text.split()).replace("|", "\\|")
    out, pos = [], 0
    for m in _CELL_MATH.finditer(text):
        out += [text[pos : m.start()].replace("$", "\\$"), m.group(0)]
        pos = m.end()
    out.append(text[pos:].replace("$", "\\$"))
    return "".join(out) or " "


def _unique_names(cells: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for i, cell in enumerate(cells):
        name = cell or f"column {i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        names.append(name)
    return names


_NUMBER = re.compile(r"^[+-−]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


def _maybe_numeric(pd: Any, column: Any) -> Any:
    values = [str(v).strip() for v in column]
    filled = [v for v in values if v]
    if not filled or not all(_NUMBER.match(v.replace("−", "-")) for v in filled):
        return column
    if any(v.endswith("%") for v in filled):
        return column  # "12%" stays text: a number would lose what the cell said
    return pd.to_numeric(pd.Series([v.replace("−", "-") or None for v in values]), errors="coerce")


def _looks_like_header(row: list[str]) -> bool:
    """A first row names columns when its cells are distinct words (not numbers), mostly filled."""
    cells = [c.strip() for c in row]
    filled = [c for c in cells if c]
    return (
        bool(filled)
        and 2 * len(filled) >= len(cells)
        and len(set(filled)) == len(filled)
        and not any(_NUMBER.match(c.replace("−", "-")) for c in filled)
    )


# -- LaTeX tabular --------------------------------------------------------------------------

_BEGIN_TABULAR = re.compile(r"\\begin\{tabular\*?\}")
_RULES = re.compile(
    r"\\(hline|toprule|midrule|bottomrule|hhline\{[^}]*\}|cline\{[^}]*\}|cmidrule(\([^)]*\))?\{[^}]*\})"
)


def braced(text: str, start: int) -> tuple[str, int] | None:
    """The ``{...}`` group opening at ``text[start]`` (nesting, ``\\{`` escapes): (inner, end)."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def find_tabulars(mmd: str) -> list[tuple[int, int, list[list[str]]]]:
    r"""Every top-level ``\begin{tabular}...\end{tabular}``: (start, end, rows), in order."""
    found: list[tuple[int, int, list[list[str]]]] = []
    pos = 0
    while True:
        m = _BEGIN_TABULAR.search(mmd, pos)
        if not m:
            return found
        env = m.group(0)[7:-1]
        i = m.end()
        if env == "tabular*":  # width argument first
            group = braced(mmd, i)
            i = group[1] if group else i
        if i < len(mmd) and mmd[i] == "[":  # [t] / [b] position
            close = mmd.find("]", i)
            i = close + 1 if close != -1 else i
        spec = braced(mmd, i)
        if spec:
            i = spec[1]
        end = _matching_end(mmd, i, env)
        if end is None:  # unclosed: leave the text as it is
            return found
        body_end, block_end = end
        found.append((m.start(), block_end, parse_tabular(mmd[i:body_end])))
        pos = block_end


def _matching_end(text: str, pos: int, env: str) -> tuple[int, int] | None:
    """(start of ``\\end{env}``, end of it) that closes a block whose body starts at pos."""
    begin = f"\\begin{{{env}}}"
    end = f"\\end{{{env}}}"
    depth = 1
    i = pos
    while depth:
        b = text.find(begin, i)
        e = text.find(end, i)
        if e == -1:
            return None
        if b != -1 and b < e:
            depth += 1
            i = b + len(begin)
        else:
            depth -= 1
            i = e + len(end)
            if depth == 0:
                return e, i
    return None


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside braces, math and nested environments (``\\&`` is no separator)."""
    parts: list[str] = []
    depth = 0
    env = 0
    math: str | None = None
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text.startswith("\\begin{", i):
            env += 1
        elif text.startswith("\\end{", i):
            env = max(0, env - 1)
        if math is None:
            if text.startswith("\\(", i) or text.startswith("\\[", i):
                math = ")" if text[i + 1] == "(" else "]"
                i += 2
                continue
            if text[i] == "$":
                math = "$"
                i += 1
                continue
        else:
            if math in ")]" and text.startswith("\\" + math, i):
                math = None
                i += 2
                continue
            if math == "$" and text[i] == "$":
                math = None
            i += 2 if text[i] == "\\" else 1
            continue
        if sep == "\\\\" and text.startswith("\\\\", i) and depth == 0 and env == 0:
            parts.append(text[start:i])
            i += 2
            if i < n and text[i] == "[":  # \\[2pt]
                close = text.find("]", i)
                i = close + 1 if close != -1 else i
            start = i
            continue
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0 and env == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_tabular(body: str) -> list[list[str]]:
    r"""Rows of cell text from the body of a tabular (``&`` cells, ``\\`` rows, rules dropped)."""
    rows = []
    for raw_row in _split_top(body, "\\\\"):
        row_text = _RULES.sub("", raw_row)
        if not row_text.strip():
            continue
        cells: list[str] = []
        for cell in _split_top(row_text, "&"):
            text, span = _cell_text(cell)
            cells.append(text)
            cells.extend([""] * (span - 1))
        rows.append(cells)
    return rows


_MULTI = re.compile(r"^\s*\\multi(column|row)")


def _cell_text(cell: str) -> tuple[str, int]:
    """One cell's text and how many columns it spans (``\\multicolumn``)."""
    text = cell.strip()
    span = 1
    m = _MULTI.match(text)
    if m:
        i = m.end()
        args: list[str] = []
        while len(args) < 3:
            while i < len(text) and text[i] in " \t\n[":
                if text[i] == "[":  # \multirow[t]
                    i = text.find("]", i) + 1 or len(text)
                else:
                    i += 1
            group = braced(text, i)
            if group is None:
                break
            args.append(group[0])
            i = group[1]
        if len(args) == 3:
            if m.group(1) == "column" and args[0].strip().isdigit():
                span = max(1, int(args[0]))
            text = args[2]
    return inline_text(text), span


_STYLE_COMMANDS = re.compile(
    r"\\(textbf|textit|emph|textrm|textsf|texttt|text|underline|uline|mathrm|makecell|"
    r"thead|centering|raggedright|raggedleft|bf|it|small|footnotesize|scriptsize|tiny|large)\b"
)


def inline_text(text: str) -> str:
    r"""Cell/plain text of a piece of MMD: math as ``$...$``, style commands and braces removed."""
    text = text.strip()
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if text.startswith("\\(", i) or text.startswith("\\[", i):
            close = "\\)" if text[i + 1] == "(" else "\\]"
            j = text.find(close, i + 2)
            if j == -1:
                out.append(text[i:])
                break
            out.append(f"${text[i + 2 : j].strip()}$")
            i = j + 2
            continue
        if text[i] == "$":
            j = text.find("$", i + 1)
            if j == -1:
                out.append(text[i:])
                break
            out.append(text[i : j + 1])
            i = j + 1
            continue
        m = _STYLE_COMMANDS.match(text, i)
        if m:
            i = m.end()
            continue
        if text.startswith("\\\\", i) or text.startswith("\\newline", i):
            out.append(" ")
            i += 2 if text.startswith("\\\\", i) else 8
            continue
        if text[i] == "\\" and i + 1 < n and text[i + 1] in "&%$#_{}":
            out.append(text[i + 1])
            i += 2
            continue
        if text[i] in "{}":
            i += 1
            continue
        out.append(text[i])
        i += 1
    return " ".join("".join(out).split())


# -- Markdown pipe tables -------------------------------------------------------------------

_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def _pipe_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [inline_text(c.replace("\\|", "|")) for c in cells]


def markdown_tables(text: str) -> list[tuple[int, int, list[list[str]]]]:
    """Pipe tables (header line, ``---`` line, rows) outside code fences: (start, end, rows)."""
    found: list[tuple[int, int, list[list[str]]]] = []
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if (
            not fenced
            and "|" in line
            and i + 1 < len(lines)
            and _SEPARATOR.match(lines[i + 1])
            and "|" in lines[i + 1]
        ):
            rows = [_pipe_cells(line)]
            j = i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                rows.append(_pipe_cells(lines[j]))
                j += 1
            found.append((offsets[i], offsets[j], rows))
            i = j
            continue
        i += 1
    return found


# -- HTML and TSV ---------------------------------------------------------------------------


class _TableParser(HTMLParser):
    """Collects <table> rows (cell text); a table inside a cell becomes that cell's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[list[list[str]], bool]] = []
        self._stack: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            if self._stack and self._stack[-1]["cell"] is not None:
                self._stack[-1]["nested"] += 1
                return
            self._stack.append({"rows": [], "cell": None, "th": [], "nested": 0, "span": 1})
            return
        if not self._stack:
            return
        top = self._stack[-1]
        if top["nested"]:
            return
        if tag == "tr":
            top["rows"].append([])
            top["th"].append(True)
        elif tag in ("td", "th"):
            if not top["rows"]:
                top["rows"].append([])
                top["th"].append(True)
            top["cell"] = []
            span = dict(attrs).get("colspan") or "1"
            top["span"] = int(span) if span.isdigit() else 1
            if tag == "td":
                top["th"][-1] = False
        elif tag == "br" and top["cell"] is not None:
            top["cell"].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if not self._stack:
            return
        top = self._stack[-1]
        if top["nested"]:
            if tag == "table":
                top["nested"] -= 1
            return
        if tag in ("td", "th") and top["cell"] is not None:
            text = " ".join("".join(top["cell"]).split())
            top["rows"][-1].extend([text] + [""] * (top["span"] - 1))
            top["cell"] = None
        elif tag == "table":
            self._stack.pop()
            rows = [r for r in top["rows"] if r]
            first_is_th = bool(top["th"]) and top["th"][0] and bool(rows)
            self.tables.append((rows, first_is_th))

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1]["cell"] is not None:
            self._stack[-1]["cell"].append(data)


def html_tables(html: str) -> list[Table]:
    """Every top-level ``<table>`` of an HTML string."""
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    return [
        Table(rows, header=th or _looks_like_header(rows[0]), source="html")
        for rows, th in parser.tables
        if rows
    ]


def tsv_table(text: str) -> Table | None:
    """A table from tab-separated text (Mathpix's ``tsv`` data), None when it has no cells."""
    rows = [line.split("\t") for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not rows:
        return None
    return Table(rows, header=_looks_like_header(rows[0]), source="tsv")


def mmd_tables(mmd: str) -> list[Table]:
    """Tabular blocks and pipe tables of Mathpix Markdown, in the order they appear."""
    spans = [(s, "tabular", rows) for s, _, rows in find_tabulars(mmd)]
    spans += [(s, "markdown", rows) for s, _, rows in markdown_tables(mmd)]
    tables = []
    for _, kind, rows in sorted(spans, key=lambda t: t[0]):
        if rows:
            header = kind == "markdown" or _looks_like_header(rows[0])
            tables.append(Table(rows, header=header, source=kind))
    return tables


def extract_tables(result: Any) -> list[Table]:
    """The tables of an ``OcrResult`` or ``PdfResult`` (see the module docstring for the order)."""
    raw = getattr(result, "raw", None) or {}
    tables: list[Table] = []
    for item in raw.get("data") or []:
        if not isinstance(item, dict):
            continue
        kind, value = item.get("type"), item.get("value")
        if not isinstance(value, str):
            continue
        if kind == "tsv":
            table = tsv_table(value)
            if table is not None:
                tables.append(table)
        elif kind in ("table_html", "html"):
            tables.extend(html_tables(value))
    if tables:
        return tables
    html = getattr(result, "html", None)
    outputs = getattr(result, "outputs", None)
    if not isinstance(html, str) and isinstance(outputs, dict) and "html" in outputs:
        html = outputs["html"].decode("utf-8", "replace")
    if isinstance(html, str) and "<table" in html:
        tables = html_tables(html)
        if tables:
            return tables
    mmd = getattr(result, "mmd", None) if outputs is not None else None
    if mmd is None and outputs is not None:
        mmd = getattr(result, "md", None)
    if mmd is None:
        mmd = getattr(result, "text", "")
    return mmd_tables(str(mmd or ""))


def tables_to_frames(tables: list[Table]) -> list[pd.DataFrame]:
    """DataFrames of the tables (pandas needed; the error says how to install it)."""
    return [t.to_frame() for t in tables]
