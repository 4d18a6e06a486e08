"""Office Open XML writers (DOCX, PPTX, XLSX) from MMD blocks, with the standard library's
``zipfile`` only.

* DOCX: title, headings (Word's built-in Heading styles, so the navigation pane works),
  paragraphs with bold / italic / code runs, math as Office Math (editable equations),
  tables with borders, real bulleted and numbered lists, code blocks.
* PPTX: a slide per section (title + body text box), tables as PowerPoint tables, math as
  its LaTeX text.
* XLSX: every table of the document on its own sheet (numbers as numbers); a document
  without tables gives one sheet with a row per block.

Every part is well-formed XML with the content types and relationships the packaging
spec (ECMA-376 part 2) asks for; the tests open the files with python-docx, python-pptx
and openpyxl.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime, timezone

from ._mmd import Block, Inline, plain, title_of
from ._omml import latex_to_omml, xml_text

XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS_M = "http://schemas.openxmlformats.org/officeDocument/2006/math"
NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
NS_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
NS_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CT_BASE = "application/vnd.openxmlformats-officedocument"
REL_BASE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
APPLICATION = "mathpix_nb local server"


def _package(parts: dict[str, str | bytes]) -> bytes:
    """A zip with ``[Content_Types].xml`` first, fixed timestamps (same input, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(parts, key=lambda n: (n != "[Content_Types].xml", n)):
            data = parts[name]
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.encode("utf-8") if isinstance(data, str) else data)
    return buffer.getvalue()


def _content_types(overrides: dict[str, str]) -> str:
    items = "".join(
        f'<Override PartName="{name}" ContentType="{ctype}"/>' for name, ctype in overrides.items()
    )
    return (
        XML_HEAD
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        + 'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        + items
        + "</Types>"
    )


def _rels(targets: list[tuple[str, str]]) -> str:
    """Relationships ``rId1..`` for (type URI, target) pairs."""
    items = "".join(
        f'<Relationship Id="rId{i}" Type="{kind}" Target="{xml_text(target)}"/>'
        for i, (kind, target) in enumerate(targets, start=1)
    )
    return XML_HEAD + f'<Relationships xmlns="{NS_PKG_REL}">{items}</Relationships>'


def _doc_props(title: str) -> dict[str, str]:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core = (
        XML_HEAD
        + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
        + 'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        + 'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dcmitype="http://purl.org/dc/dcmitype/" '
        + 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        + f"<dc:title>{xml_text(title)}</dc:title><dc:creator>{APPLICATION}</dc:creator>"
        + f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
        + f'<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified>'
        + "</cp:coreProperties>"
    )
    app = (
        XML_HEAD
        + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        + f'extended-properties"><Application>{APPLICATION}</Application></Properties>'
    )
    return {"docProps/core.xml": core, "docProps/app.xml": app}


_PROPS_TYPES = {
    "/docProps/core.xml": "application/vnd.openxmlformats-package.core-properties+xml",
    "/docProps/app.xml": f"{CT_BASE}.extended-properties+xml",
}
_PROPS_RELS = [
    (
        "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties",
        "docProps/core.xml",
    ),
    (f"{REL_BASE}/extended-properties", "docProps/app.xml"),
]


# --------------------------------------------------------------------------- DOCX


def _w_runs(inlines: list[Inline]) -> str:
    out = []
    for kind, value in inlines:
        if kind == "math":
            out.append(latex_to_omml(value))
            continue
        props = {
            "bold": "<w:b/>",
            "italic": "<w:i/>",
            "code": '<w:rFonts w:ascii="Courier New" w:hAnsi="Courier New"/>',
        }.get(kind, "")
        rpr = f"<w:rPr>{props}</w:rPr>" if props else ""
        out.append(f'<w:r>{rpr}<w:t xml:space="preserve">{xml_text(value)}</w:t></w:r>')
    return "".join(out)


def _w_para(inlines: list[Inline], style: str | None = None, extra_ppr: str = "") -> str:
    ppr = f'<w:pStyle w:val="{style}"/>' if style else ""
    ppr += extra_ppr
    return f"<w:p>{f'<w:pPr>{ppr}</w:pPr>' if ppr else ''}{_w_runs(inlines)}</w:p>"


def _w_table(rows: list[list[list[Inline]]]) -> str:
    width = max((len(r) for r in rows), default=1)
    col = 9360 // max(width, 1)  # 6.5 inches of text width, in twentieths of a point
    border = '<w:{0} w:val="single" w:sz="4" w:space="0" w:color="808080"/>'
    borders = "".join(
        border.format(side) for side in ("top", "left", "bottom", "right", "insideH", "insideV")
    )
    grid = "".join(f'<w:gridCol w:w="{col}"/>' for _ in range(width))
    body = []
    for n, row in enumerate(rows):
        cells = []
        for cell in row + [[]] * (width - len(row)):
            runs = [("bold", v) if n == 0 and k == "text" else (k, v) for k, v in cell]
            cells.append(
                f'<w:tc><w:tcPr><w:tcW w:w="{col}" w:type="dxa"/></w:tcPr>{_w_para(runs)}</w:tc>'
            )
        body.append(f"<w:tr>{''.join(cells)}</w:tr>")
    return (
        '<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="0" w:type="auto"/>'
        f"<w:tblBorders>{borders}</w:tblBorders></w:tblPr><w:tblGrid>{grid}</w:tblGrid>"
        + "".join(body)
        + "</w:tbl>"
    )


_DOCX_STYLES = (
    XML_HEAD
    + f'<w:styles xmlns:w="{NS_W}"><w:docDefaults><w:rPrDefault><w:rPr>'
    + '<w:rFonts w:ascii="Calibri" w:hAnsi="Calibri" w:eastAsia="Calibri" w:cs="Calibri"/>'
    + '<w:sz w:val="22"/><w:szCs w:val="22"/><w:lang w:val="en-US"/></w:rPr></w:rPrDefault>'
    + '<w:pPrDefault><w:pPr><w:spacing w:after="160" w:line="259" w:lineRule="auto"/></w:pPr>'
    + "</w:pPrDefault></w:docDefaults>"
    + '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/>'
    + "<w:qFormat/></w:style>"
    + '<w:style w:type="character" w:default="1" w:styleId="DefaultParagraphFont">'
    + '<w:name w:val="Default Paragraph Font"/><w:uiPriority w:val="1"/><w:semiHidden/>'
    + "</w:style>"
    + '<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/>'
    + '<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/><w:pPr>'
    + '<w:jc w:val="center"/><w:spacing w:after="240"/></w:pPr><w:rPr><w:b/>'
    + '<w:sz w:val="48"/></w:rPr></w:style>'
    + "".join(
        f'<w:style w:type="paragraph" w:styleId="Heading{n}"><w:name w:val="heading {n}"/>'
        '<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/><w:pPr><w:keepNext/>'
        f'<w:spacing w:before="240" w:after="80"/><w:outlineLvl w:val="{n - 1}"/></w:pPr>'
        f'<w:rPr><w:b/><w:sz w:val="{size}"/></w:rPr></w:style>'
        for n, size in zip(range(1, 7), (32, 28, 26, 24, 22, 22), strict=True)
    )
    + '<w:style w:type="paragraph" w:styleId="ListParagraph"><w:name w:val="List Paragraph"/>'
    + '<w:basedOn w:val="Normal"/><w:qFormat/><w:pPr><w:ind w:left="720"/>'
    + "<w:contextualSpacing/></w:pPr></w:style>"
    + '<w:style w:type="paragraph" w:styleId="Code"><w:name w:val="Code"/>'
    + '<w:basedOn w:val="Normal"/><w:pPr><w:spacing w:after="0" w:line="240" '
    + 'w:lineRule="auto"/></w:pPr><w:rPr><w:rFonts w:ascii="Courier New" '
    + 'w:hAnsi="Courier New"/><w:sz w:val="18"/></w:rPr></w:style>'
    + '<w:style w:type="table" w:default="1" w:styleId="TableNormal"><w:name w:val="Normal '
    + 'Table"/><w:tblPr><w:tblInd w:w="0" w:type="dxa"/><w:tblCellMar><w:top w:w="0" '
    + 'w:type="dxa"/><w:left w:w="108" w:type="dxa"/><w:bottom w:w="0" w:type="dxa"/>'
    + '<w:right w:w="108" w:type="dxa"/></w:tblCellMar></w:tblPr></w:style>'
    + '<w:style w:type="table" w:styleId="TableGrid"><w:name w:val="Table Grid"/>'
    + '<w:basedOn w:val="TableNormal"/><w:pPr><w:spacing w:after="0"/></w:pPr></w:style>'
    + "</w:styles>"
)


def _numbering(ordered_lists: int) -> str:
    bullet = (
        '<w:abstractNum w:abstractNumId="0"><w:multiLevelType w:val="hybridMultilevel"/>'
        '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="bullet"/>'
        '<w:lvlText w:val="\u2022"/><w:lvlJc w:val="left"/><w:pPr><w:ind w:left="720" '
        'w:hanging="360"/></w:pPr></w:lvl></w:abstractNum>'
    )
    decimal = (
        '<w:abstractNum w:abstractNumId="1"><w:multiLevelType w:val="hybridMultilevel"/>'
        '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/>'
        '<w:lvlText w:val="%1."/><w:lvlJc w:val="left"/><w:pPr><w:ind w:left="720" '
        'w:hanging="360"/></w:pPr></w:lvl></w:abstractNum>'
    )
    nums = '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>'
    for n in range(ordered_lists):  # each numbered list restarts at 1
        nums += (
            f'<w:num w:numId="{n + 2}"><w:abstractNumId w:val="1"/><w:lvlOverride w:ilvl="0">'
            '<w:startOverride w:val="1"/></w:lvlOverride></w:num>'
        )
    return XML_HEAD + f'<w:numbering xmlns:w="{NS_W}">{bullet}{decimal}{nums}</w:numbering>'


def to_docx(blocks: list[Block], name: str) -> bytes:
    """A Word document (.docx) of the blocks."""
    body: list[str] = []
    ordered = 0
    for block in blocks:
        if block.kind == "title":
            body.append(_w_para(block.inlines, "Title"))
        elif block.kind == "heading":
            body.append(_w_para(block.inlines, f"Heading{max(1, min(6, block.level))}"))
        elif block.kind == "para":
            body.append(_w_para(block.inlines))
        elif block.kind == "math":
            body.append(f"<w:p><m:oMathPara>{latex_to_omml(block.text)}</m:oMathPara></w:p>")
        elif block.kind == "table" and block.rows:
            body.append(_w_table(block.rows))
            body.append("<w:p/>")
        elif block.kind == "list":
            if block.ordered:
                ordered += 1
            num_id = ordered + 1 if block.ordered else 1
            numpr = f'<w:numPr><w:ilvl w:val="0"/><w:numId w:val="{num_id}"/></w:numPr>'
            body.extend(_w_para(item, "ListParagraph", numpr) for item in block.items)
        elif block.kind == "code":
            lines = block.text.split("\n")
            runs = "<w:r><w:br/></w:r>".join(
                f'<w:r><w:t xml:space="preserve">{xml_text(line)}</w:t></w:r>' for line in lines
            )
            body.append(f'<w:p><w:pPr><w:pStyle w:val="Code"/></w:pPr>{runs}</w:p>')
        elif block.kind == "image":
            label = f"[image: {block.alt}] " if block.alt else "[image] "
            body.append(_w_para([("italic", label + block.text)]))
        elif block.kind == "pagebreak":
            body.append('<w:p><w:r><w:br w:type="page"/></w:r></w:p>')
    section = (
        '<w:sectPr><w:pgSz w:w="12240" w:h="15840"/><w:pgMar w:top="1440" w:right="1440" '
        'w:bottom="1440" w:left="1440" w:header="720" w:footer="720" w:gutter="0"/></w:sectPr>'
    )
    document = (
        XML_HEAD
        + f'<w:document xmlns:w="{NS_W}" xmlns:m="{NS_M}" xmlns:r="{NS_REL}"><w:body>'
        + "".join(body)
        + section
        + "</w:body></w:document>"
    )
    word = f"{CT_BASE}.wordprocessingml"
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": _content_types(
            {
                "/word/document.xml": f"{word}.document.main+xml",
                "/word/styles.xml": f"{word}.styles+xml",
                "/word/numbering.xml": f"{word}.numbering+xml",
                **_PROPS_TYPES,
            }
        ),
        "_rels/.rels": _rels([(f"{REL_BASE}/officeDocument", "word/document.xml"), *_PROPS_RELS]),
        "word/document.xml": document,
        "word/styles.xml": _DOCX_STYLES,
        "word/numbering.xml": _numbering(ordered),
        "word/_rels/document.xml.rels": _rels(
            [(f"{REL_BASE}/styles", "styles.xml"), (f"{REL_BASE}/numbering", "numbering.xml")]
        ),
        **_doc_props(title_of(blocks, name)),
    }
    return _package(parts)


# --------------------------------------------------------------------------- PPTX

SLIDE_W, SLIDE_H = 12192000, 6858000  # 16:9, in EMU
_MARGIN = 457200
_LINES_PER_SLIDE = 12

_THEME = (
    XML_HEAD
    + f'<a:theme xmlns:a="{NS_A}" name="mathpix_nb"><a:themeElements>'
    + '<a:clrScheme name="mathpix_nb"><a:dk1><a:sysClr val="windowText" lastClr="000000"/>'
    + '</a:dk1><a:lt1><a:sysClr val="window" lastClr="FFFFFF"/></a:lt1><a:dk2>'
    + '<a:srgbClr val="1F2937"/></a:dk2><a:lt2><a:srgbClr val="F3F4F6"/></a:lt2>'
    + "".join(
        f'<a:accent{n}><a:srgbClr val="{c}"/></a:accent{n}>'
        for n, c in enumerate(("2563EB", "DC2626", "16A34A", "CA8A04", "9333EA", "0891B2"), 1)
    )
    + '<a:hlink><a:srgbClr val="2563EB"/></a:hlink><a:folHlink><a:srgbClr val="7C3AED"/>'
    + "</a:folHlink></a:clrScheme>"
    + '<a:fontScheme name="mathpix_nb"><a:majorFont><a:latin typeface="Calibri Light"/>'
    + '<a:ea typeface=""/><a:cs typeface=""/></a:majorFont><a:minorFont>'
    + '<a:latin typeface="Calibri"/><a:ea typeface=""/><a:cs typeface=""/></a:minorFont>'
    + "</a:fontScheme>"
    + '<a:fmtScheme name="mathpix_nb"><a:fillStyleLst>'
    + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3
    + "</a:fillStyleLst><a:lnStyleLst>"
    + "".join(
        f'<a:ln w="{w}"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>'
        for w in (6350, 12700, 19050)
    )
    + "</a:lnStyleLst><a:effectStyleLst>"
    + "<a:effectStyle><a:effectLst/></a:effectStyle>" * 3
    + "</a:effectStyleLst><a:bgFillStyleLst>"
    + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3
    + "</a:bgFillStyleLst></a:fmtScheme></a:themeElements></a:theme>"
)

_GROUP = (
    '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
    '<p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/>'
    '<a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>'
)
_P_NS = f'xmlns:a="{NS_A}" xmlns:r="{NS_REL}" xmlns:p="{NS_P}"'


def _a_runs(inlines: list[Inline], size: int, bold: bool = False) -> str:
    out = []
    for kind, value in inlines:
        text = f"\\({value}\\)" if kind == "math" else value
        attrs = f'lang="en-US" sz="{size}" dirty="0"'
        if bold or kind == "bold":
            attrs += ' b="1"'
        if kind == "italic" or kind == "math":
            attrs += ' i="1"'
        font = '<a:latin typeface="Courier New"/>' if kind == "code" else ""
        out.append(f"<a:r><a:rPr {attrs}>{font}</a:rPr><a:t>{xml_text(text)}</a:t></a:r>")
    return "".join(out) or f'<a:endParaRPr lang="en-US" sz="{size}"/>'


def _text_box(shape_id: int, name: str, y: int, height: int, paragraphs: list[str]) -> str:
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{shape_id}" name="{name}"/><p:cNvSpPr txBox="1"/>'
        f'<p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="{_MARGIN}" y="{y}"/>'
        f'<a:ext cx="{SLIDE_W - 2 * _MARGIN}" cy="{height}"/></a:xfrm><a:prstGeom prst="rect">'
        '<a:avLst/></a:prstGeom><a:noFill/></p:spPr><p:txBody><a:bodyPr wrap="square" '
        'rtlCol="0"><a:normAutofit/></a:bodyPr><a:lstStyle/>'
        + "".join(f"<a:p>{p}</a:p>" for p in paragraphs)
        + "</p:txBody></p:sp>"
    )


def _a_table(shape_id: int, y: int, rows: list[list[list[Inline]]]) -> str:
    width = max((len(r) for r in rows), default=1)
    total = SLIDE_W - 2 * _MARGIN
    col = total // width
    row_h = 370840
    grid = "".join(f'<a:gridCol w="{col}"/>' for _ in range(width))
    body = "".join(
        f'<a:tr h="{row_h}">'
        + "".join(
            "<a:tc><a:txBody><a:bodyPr/><a:lstStyle/>"
            f"<a:p>{_a_runs(cell, 1400, bold=n == 0)}</a:p></a:txBody><a:tcPr/></a:tc>"
            for cell in row + [[]] * (width - len(row))
        )
        + "</a:tr>"
        for n, row in enumerate(rows)
    )
    return (
        f'<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="{shape_id}" name="Table {shape_id}"/>'
        '<p:cNvGraphicFramePr><a:graphicFrameLocks noGrp="1"/></p:cNvGraphicFramePr><p:nvPr/>'
        f'</p:nvGraphicFramePr><p:xfrm><a:off x="{_MARGIN}" y="{y}"/><a:ext cx="{col * width}" '
        f'cy="{row_h * len(rows)}"/></p:xfrm><a:graphic><a:graphicData '
        'uri="http://schemas.openxmlformats.org/drawingml/2006/table"><a:tbl>'
        f'<a:tblPr firstRow="1" bandRow="1"/><a:tblGrid>{grid}</a:tblGrid>{body}</a:tbl>'
        "</a:graphicData></a:graphic></p:graphicFrame>"
    )


def _slides(blocks: list[Block], name: str) -> list[tuple[str, list[str], list[Block]]]:
    """(title, body paragraphs, tables) per slide: a new slide at each title / heading
    (one with no body still gets its slide), when the body is full, and for each table."""
    slides: list[tuple[str, list[str], list[Block]]] = []
    title, body, tables, titled = name, [], [], False  # type: ignore[var-annotated]

    def push() -> None:
        slides.append((title, list(body), list(tables)))

    for block in blocks:
        if block.kind in ("title", "heading"):
            if body or tables or titled:
                push()
            title, body, tables = plain(block.inlines).strip() or name, [], []
            titled = True
            continue
        if block.kind == "table":
            if body:
                push()
                body = []
            tables = [block]
            push()
            tables, titled = [], False
            continue
        if block.kind == "list":
            mark = (
                '<a:buAutoNum type="arabicPeriod"/>'
                if block.ordered
                else '<a:buChar char="\u2022"/>'
            )
            paras = [
                f'<a:pPr marL="342900" indent="-342900">{mark}</a:pPr>' + _a_runs(item, 2000)
                for item in block.items
            ]
        elif block.kind == "math":
            paras = ['<a:pPr algn="ctr"/>' + _a_runs([("math", block.text)], 2000)]
        elif block.kind in ("para", "code"):
            inlines = block.inlines if block.kind == "para" else [("code", block.text)]
            paras = ["<a:pPr><a:buNone/></a:pPr>" + _a_runs(inlines, 1800)]
        elif block.kind == "image":
            paras = [_a_runs([("italic", f"[image] {block.text}")], 1400)]
        else:
            continue
        for para in paras:
            if len(body) >= _LINES_PER_SLIDE:
                push()
                body = []
            body.append(para)
    if body or tables or titled or not slides:
        push()
    return slides


def to_pptx(blocks: list[Block], name: str) -> bytes:
    """A PowerPoint deck (.pptx) of the blocks."""
    pml = f"{CT_BASE}.presentationml"
    slides = _slides(blocks, title_of(blocks, name))
    parts: dict[str, str | bytes] = {}
    overrides = {
        "/ppt/presentation.xml": f"{pml}.presentation.main+xml",
        "/ppt/slideMasters/slideMaster1.xml": f"{pml}.slideMaster+xml",
        "/ppt/slideLayouts/slideLayout1.xml": f"{pml}.slideLayout+xml",
        "/ppt/theme/theme1.xml": f"{CT_BASE}.theme+xml",
        "/ppt/presProps.xml": f"{pml}.presProps+xml",
        "/ppt/tableStyles.xml": f"{pml}.tableStyles+xml",
        **_PROPS_TYPES,
    }
    slide_rels = [(f"{REL_BASE}/slideLayout", "../slideLayouts/slideLayout1.xml")]
    for n, (title, body, tables) in enumerate(slides, start=1):
        shapes = _text_box(
            2, "Title", _MARGIN // 2, 1143000, [_a_runs([("text", title)], 3200, True)]
        )
        top = _MARGIN // 2 + 1143000 + 91440
        if body:
            shapes += _text_box(3, "Body", top, SLIDE_H - top - _MARGIN, body)
        for k, table in enumerate(tables):
            shapes += _a_table(4 + k, top, table.rows)
        parts[f"ppt/slides/slide{n}.xml"] = (
            XML_HEAD + f"<p:sld {_P_NS}><p:cSld><p:spTree>{_GROUP}{shapes}</p:spTree></p:cSld>"
            "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>"
        )
        parts[f"ppt/slides/_rels/slide{n}.xml.rels"] = _rels(slide_rels)
        overrides[f"/ppt/slides/slide{n}.xml"] = f"{pml}.slide+xml"
    slide_ids = "".join(
        f'<p:sldId id="{255 + n}" r:id="rId{4 + n}"/>' for n in range(1, len(slides) + 1)
    )
    parts["ppt/presentation.xml"] = (
        XML_HEAD + f'<p:presentation {_P_NS} saveSubsetFonts="1">'
        '<p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>'
        f"<p:sldIdLst>{slide_ids}</p:sldIdLst>"
        f'<p:sldSz cx="{SLIDE_W}" cy="{SLIDE_H}"/><p:notesSz cx="6858000" cy="9144000"/>'
        "<p:defaultTextStyle/></p:presentation>"
    )
    parts["ppt/_rels/presentation.xml.rels"] = _rels(
        [
            (f"{REL_BASE}/slideMaster", "slideMasters/slideMaster1.xml"),
            (f"{REL_BASE}/theme", "theme/theme1.xml"),
            (f"{REL_BASE}/presProps", "presProps.xml"),
            (f"{REL_BASE}/tableStyles", "tableStyles.xml"),
            *[(f"{REL_BASE}/slide", f"slides/slide{n}.xml") for n in range(1, len(slides) + 1)],
        ]
    )
    parts["ppt/slideMasters/slideMaster1.xml"] = (
        XML_HEAD + f'<p:sldMaster {_P_NS}><p:cSld><p:bg><p:bgRef idx="1001">'
        f'<a:schemeClr val="bg1"/></p:bgRef></p:bg><p:spTree>{_GROUP}</p:spTree></p:cSld>'
        '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" '
        'accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" '
        'folHlink="folHlink"/><p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/>'
        "</p:sldLayoutIdLst><p:txStyles><p:titleStyle/><p:bodyStyle/><p:otherStyle/>"
        "</p:txStyles></p:sldMaster>"
    )
    parts["ppt/slideMasters/_rels/slideMaster1.xml.rels"] = _rels(
        [
            (f"{REL_BASE}/slideLayout", "../slideLayouts/slideLayout1.xml"),
            (f"{REL_BASE}/theme", "../theme/theme1.xml"),
        ]
    )
    parts["ppt/slideLayouts/slideLayout1.xml"] = (
        XML_HEAD + f'<p:sldLayout {_P_NS} type="blank" preserve="1"><p:cSld name="Blank">'
        f"<p:spTree>{_GROUP}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/>"
        "</p:clrMapOvr></p:sldLayout>"
    )
    parts["ppt/slideLayouts/_rels/slideLayout1.xml.rels"] = _rels(
        [(f"{REL_BASE}/slideMaster", "../slideMasters/slideMaster1.xml")]
    )
    parts["ppt/theme/theme1.xml"] = _THEME
    parts["ppt/presProps.xml"] = XML_HEAD + f"<p:presentationPr {_P_NS}/>"
    parts["ppt/tableStyles.xml"] = (
        XML_HEAD
        + f'<a:tblStyleLst xmlns:a="{NS_A}" def="{{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}}"/>'
    )
    parts["[Content_Types].xml"] = _content_types(overrides)
    parts["_rels/.rels"] = _rels(
        [(f"{REL_BASE}/officeDocument", "ppt/presentation.xml"), *_PROPS_RELS]
    )
    parts.update(_doc_props(title_of(blocks, name)))
    return _package(parts)


# --------------------------------------------------------------------------- XLSX

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _column(n: int) -> str:
    name = ""
    while n:
        n, rem = divmod(n - 1, 26)
        name = chr(65 + rem) + name
    return name


def _sheet_xml(rows: list[list[str]]) -> str:
    out = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row, start=1):
            ref = f"{_column(c)}{r}"
            style = ' s="1"' if r == 1 and len(rows) > 1 else ""
            if _NUMBER.match(value.strip()):
                cells.append(f'<c r="{ref}"{style}><v>{value.strip()}</v></c>')
            elif value:
                cells.append(
                    f'<c r="{ref}" t="inlineStr"{style}><is><t xml:space="preserve">'
                    f"{xml_text(value)}</t></is></c>"
                )
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    return XML_HEAD + f'<worksheet xmlns="{NS_S}"><sheetData>{"".join(out)}</sheetData></worksheet>'


_XLSX_STYLES = (
    XML_HEAD
    + f'<styleSheet xmlns="{NS_S}"><fonts count="2"><font><sz val="11"/><name val="Calibri"/>'
    + '</font><font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    + '<fills count="2"><fill><patternFill patternType="none"/></fill><fill>'
    + '<patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/>'
    + "<right/><top/><bottom/><diagonal/></border></borders>"
    + '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    + '</cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" '
    + 'xfId="0"/><xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    + '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
    + "</cellStyles></styleSheet>"
)


def _cell_text(cell: list[Inline]) -> str:
    return "".join(f"\\({v}\\)" if k == "math" else v for k, v in cell).strip()


def to_xlsx(blocks: list[Block], name: str) -> bytes:
    """An Excel workbook (.xlsx): a sheet per table, or the text when there is none."""
    sheets: list[tuple[str, list[list[str]]]] = []
    for block in blocks:
        if block.kind == "table" and block.rows:
            rows = [[_cell_text(cell) for cell in row] for row in block.rows]
            sheets.append((f"Table {len(sheets) + 1}", rows))
    if not sheets:
        rows = [[block.plain()] for block in blocks if block.kind != "pagebreak"]
        sheets.append(("Text", rows or [[""]]))
    sml = f"{CT_BASE}.spreadsheetml"
    overrides = {"/xl/workbook.xml": f"{sml}.sheet.main+xml", "/xl/styles.xml": f"{sml}.styles+xml"}
    parts: dict[str, str | bytes] = {}
    entries = []
    for n, (title, rows) in enumerate(sheets, start=1):
        parts[f"xl/worksheets/sheet{n}.xml"] = _sheet_xml(rows)
        overrides[f"/xl/worksheets/sheet{n}.xml"] = f"{sml}.worksheet+xml"
        entries.append(f'<sheet name="{xml_text(title)}" sheetId="{n}" r:id="rId{n}"/>')
    parts["xl/workbook.xml"] = (
        XML_HEAD + f'<workbook xmlns="{NS_S}" xmlns:r="{NS_REL}"><sheets>{"".join(entries)}'
        "</sheets></workbook>"
    )
    parts["xl/_rels/workbook.xml.rels"] = _rels(
        [(f"{REL_BASE}/worksheet", f"worksheets/sheet{n}.xml") for n in range(1, len(sheets) + 1)]
        + [(f"{REL_BASE}/styles", "styles.xml")]
    )
    parts["xl/styles.xml"] = _XLSX_STYLES
    parts["[Content_Types].xml"] = _content_types({**overrides, **_PROPS_TYPES})
    parts["_rels/.rels"] = _rels([(f"{REL_BASE}/officeDocument", "xl/workbook.xml"), *_PROPS_RELS])
    parts.update(_doc_props(title_of(blocks, name)))
    return _package(parts)
