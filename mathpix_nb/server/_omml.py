"""LaTeX math as Office Math (OMML), the math Word edits natively.

LaTeX goes to MathML with latex2mathml (part of the ``server`` extra), and MathML elements
map onto OMML ones: fractions, scripts, radicals, n-ary operators, accents, limits, matrices
and runs. Without latex2mathml, or for LaTeX it cannot read, the equation is still OMML: a
single run holding the LaTeX source (Word shows it as a linear equation).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

MATHML = "{http://www.w3.org/1998/Math/MathML}"
NARY = set("∑∏∐∫∬∭∮∯∰⋀⋁⋂⋃⨀⨁⨂")
ACCENTS = set("^ˆ~˜¯‾→←⃗˙¨´`˘ˇ")


def xml_text(text: str) -> str:
    """``text`` escaped for XML, without the characters XML 1.0 forbids."""
    cleaned = "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or 0x20 <= ord(ch) <= 0xD7FF
        or 0xE000 <= ord(ch) <= 0xFFFD
        or 0x10000 <= ord(ch) <= 0x10FFFF
    )
    return escape(cleaned)


def _run(text: str, plain: bool = False) -> str:
    props = '<m:rPr><m:sty m:val="p"/></m:rPr>' if plain else ""
    return f'<m:r>{props}<m:t xml:space="preserve">{xml_text(text)}</m:t></m:r>'


def _tag(el: ET.Element) -> str:
    return el.tag[len(MATHML) :] if el.tag.startswith(MATHML) else el.tag


def _all(children: list[ET.Element]) -> str:
    return "".join(_convert(child) for child in children)


def _arg(el: ET.Element | None, name: str) -> str:
    inner = _convert(el) if el is not None else ""
    return f"<m:{name}>{inner}</m:{name}>"


def _convert(el: ET.Element) -> str:
    tag = _tag(el)
    kids = list(el)
    text = (el.text or "").strip()
    if tag in ("mi", "mn", "ms"):
        plain = tag == "mn" or (tag == "mi" and len(text) > 1)
        return _run(text, plain) if text else ""
    if tag == "mo":
        return _run(text, True) if text else ""
    if tag == "mtext":
        raw = (el.text or "").replace("\u00a0", " ")
        return _run(raw, True) if raw else ""
    if tag == "mspace":
        return _run(" ", True)
    if tag == "mfrac" and len(kids) == 2:
        bar = (
            ""
            if el.get("linethickness") not in ("0", "0pt", "0em")
            else ('<m:fPr><m:type m:val="noBar"/></m:fPr>')
        )
        return f"<m:f>{bar}{_arg(kids[0], 'num')}{_arg(kids[1], 'den')}</m:f>"
    if tag == "msqrt":
        return (
            '<m:rad><m:radPr><m:degHide m:val="1"/></m:radPr><m:deg/>'
            f"<m:e>{_all(kids)}</m:e></m:rad>"
        )
    if tag == "mroot" and len(kids) == 2:
        return f"<m:rad>{_arg(kids[1], 'deg')}{_arg(kids[0], 'e')}</m:rad>"
    if tag in ("msup", "msub", "msubsup", "munder", "mover", "munderover") and kids:
        return _scripts(tag, el, kids)
    if tag == "mtable":
        rows = []
        for tr in kids:
            cells = "".join(f"<m:e>{_all(list(td))}</m:e>" for td in tr)
            rows.append(f"<m:mr>{cells}</m:mr>")
        return f"<m:m>{''.join(rows)}</m:m>"
    if tag == "mfenced":
        left, right = el.get("open", "("), el.get("close", ")")
        return (
            f'<m:d><m:dPr><m:begChr m:val="{xml_text(left)}"/><m:endChr m:val="{xml_text(right)}"/>'
            f"</m:dPr><m:e>{_all(kids)}</m:e></m:d>"
        )
    return _all(kids)  # math, mrow, mstyle, mpadded, semantics, ... and unknown tags


def _scripts(tag: str, el: ET.Element, kids: list[ET.Element]) -> str:
    base = kids[0]
    base_text = (base.text or "").strip()
    nary = _tag(base) == "mo" and base_text in NARY
    if nary and tag in ("msubsup", "munderover", "msub", "munder", "msup", "mover"):
        lower = kids[1] if tag in ("msubsup", "munderover", "msub", "munder") else None
        upper = kids[-1] if tag in ("msubsup", "munderover", "msup", "mover") else None
        props = f'<m:naryPr><m:chr m:val="{xml_text(base_text)}"/>'
        props += '<m:limLoc m:val="undOvr"/>' if tag.startswith("mu") or tag == "mover" else ""
        props += '<m:subHide m:val="1"/>' if lower is None else ""
        props += '<m:supHide m:val="1"/>' if upper is None else ""
        props += "</m:naryPr>"
        return f"<m:nary>{props}{_arg(lower, 'sub')}{_arg(upper, 'sup')}<m:e/></m:nary>"
    if tag == "msup" and len(kids) == 2:
        return f"<m:sSup>{_arg(base, 'e')}{_arg(kids[1], 'sup')}</m:sSup>"
    if tag == "msub" and len(kids) == 2:
        return f"<m:sSub>{_arg(base, 'e')}{_arg(kids[1], 'sub')}</m:sSub>"
    if tag == "msubsup" and len(kids) == 3:
        return (
            f"<m:sSubSup>{_arg(base, 'e')}{_arg(kids[1], 'sub')}{_arg(kids[2], 'sup')}</m:sSubSup>"
        )
    if tag == "mover" and len(kids) == 2:
        mark = (kids[1].text or "").strip()
        if el.get("accent") == "true" or (len(mark) == 1 and mark in ACCENTS):
            return (
                f'<m:acc><m:accPr><m:chr m:val="{xml_text(mark)}"/></m:accPr>'
                f"{_arg(base, 'e')}</m:acc>"
            )
        return f"<m:limUpp>{_arg(base, 'e')}{_arg(kids[1], 'lim')}</m:limUpp>"
    if tag == "munder" and len(kids) == 2:
        return f"<m:limLow>{_arg(base, 'e')}{_arg(kids[1], 'lim')}</m:limLow>"
    if tag == "munderover" and len(kids) == 3:
        low = f"<m:limLow>{_arg(base, 'e')}{_arg(kids[1], 'lim')}</m:limLow>"
        return f"<m:limUpp><m:e>{low}</m:e>{_arg(kids[2], 'lim')}</m:limUpp>"
    return _all(kids)


def latex_to_omml(latex: str) -> str:
    """An ``<m:oMath>`` element (XML text, ``m:`` prefix) for ``latex``."""
    try:
        from latex2mathml.converter import convert

        root = ET.fromstring(convert(latex))
        inner = _convert(root)
    except Exception:  # no latex2mathml, or LaTeX it cannot read: keep the source
        inner = ""
    if not inner:
        inner = _run(latex, True)
    return f"<m:oMath>{inner}</m:oMath>"
