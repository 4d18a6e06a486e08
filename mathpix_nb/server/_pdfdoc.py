"""A small PDF writer for the ``pdf`` and ``latex.pdf`` conversions (no dependency).

Text PDFs (the words can be selected, searched and extracted), US Letter, with the
standard fonts every reader has: headings, wrapped paragraphs, math set apart in an italic
face as its LaTeX source, bulleted / numbered lists, tables drawn as grids, code in
Courier. ``style="html"`` uses Helvetica (like Mathpix's HTML-rendered PDF),
``style="latex"`` Times (like its LaTeX-rendered one). Characters outside WinAnsi print
as ``?``: the standard fonts have no other glyphs, and we embed none.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ._mmd import Block, Inline, plain, title_of

PAGE_W, PAGE_H, MARGIN = 612.0, 792.0, 72.0
FONTS = {
    "html": {"regular": "Helvetica", "bold": "Helvetica-Bold", "italic": "Helvetica-Oblique"},
    "latex": {"regular": "Times-Roman", "bold": "Times-Bold", "italic": "Times-Italic"},
}


def _width(text: str, size: float, face: str) -> float:
    """An upper estimate of the printed width (the standard fonts' metrics, coarsely)."""
    if face == "mono":
        return 0.6 * size * len(text)
    total = 0.0
    for ch in text:
        if ch == " ":
            total += 0.28
        elif ch in "il.,:;'|!`()[]":
            total += 0.3
        elif ch.isupper() or ch in "mwMW@%":
            total += 0.75
        else:
            total += 0.56
    return total * size


def _encode(text: str) -> bytes:
    data = text.encode("cp1252", "replace")
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


@dataclass
class _Piece:
    text: str
    face: str  # regular | bold | italic | mono


class _Writer:
    def __init__(self, style: str) -> None:
        self.style = style
        self.pages: list[list[bytes]] = [[]]
        self.y = PAGE_H - MARGIN

    # -- layout
    def _ops(self) -> list[bytes]:
        return self.pages[-1]

    def new_page(self) -> None:
        if self._ops():
            self.pages.append([])
        self.y = PAGE_H - MARGIN

    def need(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.new_page()

    def text_at(self, x: float, y: float, piece: _Piece, size: float) -> None:
        font = {"regular": "F1", "bold": "F2", "italic": "F3", "mono": "F4"}[piece.face]
        self._ops().append(
            b"BT /%s %.1f Tf %.2f %.2f Td (%s) Tj ET"
            % (font.encode(), size, x, y, _encode(piece.text))
        )

    def line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self._ops().append(b"%.2f %.2f m %.2f %.2f l S" % (x0, y0, x1, y1))

    def flow(
        self,
        pieces: list[_Piece],
        size: float,
        *,
        x: float = MARGIN,
        width: float = PAGE_W - 2 * MARGIN,
        center: bool = False,
        gap: float = 6,
    ) -> None:
        """Wrap ``pieces`` into lines of ``width`` and print them (new pages as needed)."""
        words: list[_Piece] = []
        for piece in pieces:
            for n, chunk in enumerate(piece.text.split(" ")):
                if n:
                    words.append(_Piece(" ", piece.face))
                if chunk:
                    words.append(_Piece(chunk, piece.face))
        lines: list[list[_Piece]] = [[]]
        used = 0.0
        for word in words:
            w = _width(word.text, size, word.face)
            if word.text == " " and not lines[-1]:
                continue
            if used + w > width and lines[-1]:
                lines.append([])
                used = 0.0
                if word.text == " ":
                    continue
            lines[-1].append(word)
            used += w
        leading = size * 1.3
        for words_on_line in lines:
            self.need(leading)
            self.y -= leading
            line_w = sum(_width(p.text, size, p.face) for p in words_on_line)
            cursor = x + (width - line_w) / 2 if center else x
            runs: list[_Piece] = []  # same-face words as one string, spaces included
            for piece in words_on_line:
                if runs and (runs[-1].face == piece.face or piece.text == " "):
                    runs[-1] = _Piece(runs[-1].text + piece.text, runs[-1].face)
                else:
                    runs.append(piece)
            for run in runs:
                self.text_at(cursor, self.y, run, size)
                cursor += _width(run.text, size, run.face)
        self.y -= gap

    def table(self, rows: list[list[str]], size: float = 9) -> None:
        cols = max((len(r) for r in rows), default=1)
        col_w = (PAGE_W - 2 * MARGIN) / cols
        pad = 3.0
        for n, row in enumerate(rows):
            cells = row + [""] * (cols - len(row))
            # wrap each cell into lines that fit its column
            wrapped: list[list[str]] = []
            for cell in cells:
                lines, current = [], ""
                for word in cell.split():
                    trial = f"{current} {word}".strip()
                    face = "bold" if n == 0 else "regular"
                    if current and _width(trial, size, face) > col_w - 2 * pad:
                        lines.append(current)
                        current = word
                    else:
                        current = trial
                lines.append(current)
                wrapped.append(lines)
            height = max(len(c) for c in wrapped) * size * 1.25 + 2 * pad
            self.need(height)
            top = self.y
            for c, lines in enumerate(wrapped):
                left = MARGIN + c * col_w
                for k, text in enumerate(lines):
                    piece = _Piece(text, "bold" if n == 0 else "regular")
                    self.text_at(left + pad, top - pad - size * (k + 1) * 1.1, piece, size)
            bottom = top - height
            self.line(MARGIN, top, MARGIN + cols * col_w, top)
            self.line(MARGIN, bottom, MARGIN + cols * col_w, bottom)
            for c in range(cols + 1):
                self.line(MARGIN + c * col_w, top, MARGIN + c * col_w, bottom)
            self.y = bottom
        self.y -= 8

    # -- output
    def render(self, title: str, producer: str) -> bytes:
        fonts = FONTS[self.style]
        objects: list[bytes] = []

        def add(data: bytes) -> int:
            objects.append(data)
            return len(objects)

        catalog = add(b"")  # filled in below
        pages_id = add(b"")
        font_ids = [
            add(
                b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
                % name.encode()
            )
            for name in (fonts["regular"], fonts["bold"], fonts["italic"], "Courier")
        ]
        resources = b"<< /Font << %s >> >>" % b" ".join(
            b"/F%d %d 0 R" % (n, fid) for n, fid in enumerate(font_ids, start=1)
        )
        kids = []
        for ops in self.pages:
            stream = zlib.compress(b"0.5 w\n" + b"\n".join(ops))
            content = add(
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
                % (len(stream), stream)
            )
            kids.append(
                add(
                    b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources %s "
                    b"/Contents %d 0 R >>" % (pages_id, PAGE_W, PAGE_H, resources, content)
                )
            )
        objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
        objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
            b" ".join(b"%d 0 R" % k for k in kids),
            len(kids),
        )

        def pdf_string(text: str) -> bytes:
            return b"(" + _encode(text) + b")"

        info = add(
            b"<< /Title %s /Producer %s /Creator %s >>"
            % (pdf_string(title), pdf_string(producer), pdf_string(producer))
        )
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for n, data in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n%s\nendobj\n" % (n, data)
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
        out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objects) + 1,
            catalog,
            info,
            xref,
        )
        return bytes(out)


def _pieces(inlines: list[Inline]) -> list[_Piece]:
    faces = {"bold": "bold", "italic": "italic", "code": "mono", "math": "italic"}
    return [_Piece(value, faces.get(kind, "regular")) for kind, value in inlines]


def to_pdf(blocks: list[Block], name: str, style: str = "html", producer: str = "") -> bytes:
    """A PDF of the blocks; ``style`` ``"html"`` (Helvetica) or ``"latex"`` (Times)."""
    writer = _Writer(style)
    for block in blocks:
        if block.kind == "title":
            writer.flow([_Piece(plain(block.inlines), "bold")], 20, center=True, gap=14)
        elif block.kind == "heading":
            size = {1: 16.0, 2: 13.5, 3: 12.0}.get(block.level, 11.0)
            writer.need(size * 3)
            writer.y -= 6
            writer.flow([_Piece(plain(block.inlines), "bold")], size, gap=4)
        elif block.kind == "para":
            writer.flow(_pieces(block.inlines), 11)
        elif block.kind == "math":
            for line in block.text.split("\n"):
                writer.flow([_Piece(line.strip(), "italic")], 11, center=True, gap=0)
            writer.y -= 8
        elif block.kind == "table" and block.rows:
            rows = [["".join(v for _, v in cell) for cell in row] for row in block.rows]
            writer.table(rows)
        elif block.kind == "list":
            for n, item in enumerate(block.items, start=1):
                mark = f"{n}." if block.ordered else "\u2022"
                writer.need(11 * 1.3)
                writer.text_at(MARGIN + 6, writer.y - 11 * 1.3, _Piece(mark, "regular"), 11)
                writer.flow(_pieces(item), 11, x=MARGIN + 24, width=PAGE_W - 2 * MARGIN - 24, gap=2)
            writer.y -= 4
        elif block.kind == "code":
            for line in block.text.split("\n") or [""]:
                writer.flow([_Piece(line, "mono")], 9, gap=0)
            writer.y -= 8
        elif block.kind == "image":
            writer.flow([_Piece(f"[image] {block.alt or block.text}", "italic")], 10)
        elif block.kind == "pagebreak":
            writer.new_page()
    return writer.render(title_of(blocks, name), producer or "mathpix_nb local server")
