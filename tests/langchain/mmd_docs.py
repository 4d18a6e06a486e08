"""Multi-page Mathpix Markdown documents the tests make, and an engine that serves them.

``math_document(seed)`` writes pages as Mathpix writes them for math papers: section
headings (``#`` and ``\\section*{}``), paragraphs with inline math (``\\( \\)`` and ``$ $``),
display math (``\\[ \\]`` and ``$$ $$`` over several lines), ``align*``, ``tabular`` and pipe
tables. ``MmdEngine`` is a local-server engine that answers each page of a registered PDF
with its MMD, line by line, so the loader gets it through the real HTTP path.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

WORDS = [
    "the",
    "energy",
    "of",
    "a",
    "system",
    "follows",
    "from",
    "its",
    "state",
    "and",
    "we",
    "compute",
    "every",
    "term",
    "below",
    "using",
    "the",
    "integral",
    "bound",
    "where",
    "each",
    "coefficient",
    "stays",
    "positive",
    "for",
    "large",
    "values",
]
INLINE = [
    r"\( a_{i} + b^{2} \)",
    r"\( \alpha \leq \beta \)",
    r"$x^{2} - 1$",
    r"\( \frac{1}{n} \sum_{k=1}^{n} k \)",
    r"$E = m c^{2}$",
    r"\( f(x) = \sqrt{x} \)",
]
DISPLAY = [
    "\\[\n\\int_{0}^{1} f(x) \\, d x = F(1) - F(0)\n\\]",
    "$$\n\\sum_{n=1}^{\\infty} \\frac{1}{n^{2}} = \\frac{\\pi^{2}}{6}\n$$",
    "\\[\n\\nabla \\cdot \\mathbf{E} = \\frac{\\rho}{\\varepsilon_{0}}\n\\]",
    "$$\n\\left( \\begin{array}{cc}\n1 & 0 \\\\\n0 & 1\n\\end{array} \\right)\n$$",
]
ALIGN = (
    "\\begin{align*}\na & = b + c \\\\\nd & = e \\cdot f \\\\\ng & = \\frac{h}{i}\n\\end{align*}"
)
TABULAR = (
    "\\begin{tabular}{|c|c|c|}\n\\hline n & $n^{2}$ & $2^{n}$ \\\\\n\\hline 1 & 1 & 2 \\\\\n"
    "\\hline 2 & 4 & 4 \\\\\n\\hline 3 & 9 & 8 \\\\\n\\hline\n\\end{tabular}"
)
PIPE = (
    "| x | \\( x^{2} \\) | note |\n|---|---|---|\n| 1 | 1 | unit |\n| 2 | 4 | even |\n"
    "| 3 | 9 | odd |"
)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    for _ in range(rng.randint(0, 2)):
        words.insert(rng.randint(0, len(words)), rng.choice(INLINE))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    lines = [" ".join(_sentence(rng) for _ in range(rng.randint(1, 3)))]
    if rng.random() < 0.3:  # a paragraph that runs over a line break, as OCR output does
        lines.append(_sentence(rng))
    return "\n".join(lines)


def math_document(seed: int, pages: int = 4) -> list[str]:
    """The MMD of each page of one document."""
    rng = random.Random(seed)
    out = []
    section = 0
    for page in range(pages):
        blocks: list[str] = []
        if page == 0:
            blocks.append(f"\\title{{Notes number {seed}}}")
        for _ in range(rng.randint(3, 6)):
            roll = rng.random()
            if roll < 0.2:
                section += 1
                heading = rng.choice(
                    [f"## {section}. Section {section}", f"\\section*{{Part {section}}}"]
                )
                blocks.append(heading)
                if rng.random() < 0.4:
                    blocks.append(f"### {section}.1 Details")
                blocks.append(_paragraph(rng))
            elif roll < 0.5:
                blocks.append(_paragraph(rng))
            elif roll < 0.65:
                blocks.append(rng.choice(DISPLAY))
            elif roll < 0.75:
                blocks.append(ALIGN)
            elif roll < 0.87:
                blocks.append(TABULAR)
            else:
                blocks.append(PIPE)
        out.append("\n\n".join(blocks))
    return out


class MmdEngine:
    """A local-server engine: each page of a registered PDF is answered with its MMD."""

    name = "mmd"
    blocking = False
    version = "mmd-fixture-1"

    def __init__(self) -> None:
        self.documents: dict[str, list[str]] = {}

    def register(self, pdf: bytes, pages: list[str]) -> None:
        self.documents[hashlib.sha256(pdf).hexdigest()] = pages

    def _pages(self, pdf: bytes) -> list[str]:
        return self.documents[hashlib.sha256(pdf).hexdigest()]

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("MmdEngine serves PDFs only")

    def pdf_page_count(self, pdf: bytes) -> int:
        return len(self._pages(pdf))

    def recognize_pdf_page(
        self, pdf: bytes, page: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        lines = self._pages(pdf)[page - 1].split("\n")
        return {
            "image_width": 612,
            "image_height": 792,
            "lines": [
                {"text": t, "confidence": 0.99, "cnt": [[0, i], [600, i], [600, i + 9], [0, i + 9]]}
                for i, t in enumerate(lines)
            ],
            "confidence": 0.99,
            "confidence_rate": 0.99,
            "version": self.version,
        }
