"""Conversions of an MMD document into every format Mathpix offers, and which converter
made each.

Our own writers make every format: ``md``, ``html``, ``tex.zip``, ``docx``, ``pptx``,
``xlsx``, ``pdf`` (HTML-style), ``latex.pdf`` (LaTeX-style), ``mmd.zip``, ``md.zip``,
``html.zip`` and ``mmd.overlay.pdf`` (here: the ``pdf`` conversion, there is no page image
to lay the text over). With ``converter_backend="auto"`` (the default) real tools are used
when installed: pandoc for ``docx``, a TeX engine (``tectonic``,
``pdflatex``, ``xelatex`` or ``lualatex``) for ``latex.pdf``; if one fails, our writer
makes the file and the converter name says so. The name is reported in the download's
``X-Mathpix-Converter`` header and in ``conversion_status[fmt]["converter"]``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache

from ._mmd import parse_mmd, title_of, to_html, to_latex, to_markdown
from ._office import to_docx, to_pptx, to_xlsx
from ._pdfdoc import to_pdf

BUILTIN = "mathpix_nb builtin"

MEDIA_TYPES = {
    "mmd": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "latex.pdf": "application/pdf",
    "mmd.overlay.pdf": "application/pdf",
    "tex.zip": "application/zip",
    "mmd.zip": "application/zip",
    "md.zip": "application/zip",
    "html.zip": "application/zip",
    "lines.json": "application/json",
    "lines.mmd.json": "application/json",
}
FORMATS = tuple(f for f in MEDIA_TYPES if f not in ("mmd", "lines.json", "lines.mmd.json"))


@dataclass(frozen=True)
class Converted:
    data: bytes
    converter: str  # e.g. "mathpix_nb builtin", "pandoc 3.1.11.1", "pdflatex"


@cache
def _tool(name: str) -> str | None:
    return shutil.which(name)


@cache
def _pandoc_version() -> str:
    path = _tool("pandoc")
    if path is None:
        return "pandoc"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].strip() if out.stdout else "pandoc"
    except (OSError, subprocess.SubprocessError):
        return "pandoc"


def available_converters() -> dict[str, str]:
    """Which external tools ``converter_backend="auto"`` would use, by format."""
    found = {}
    if _tool("pandoc"):
        # docx only: pandoc 2.x writes math into pptx with an undeclared a14 prefix, which
        # PowerPoint repairs and python-pptx refuses, so our pptx writer is the safer one
        found["docx"] = _pandoc_version()
    for engine in ("tectonic", "pdflatex", "xelatex", "lualatex"):
        if _tool(engine):
            found["latex.pdf"] = engine
            break
    return found


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        # the folder the document's images would go to (none are downloaded here)
        folder = next(iter(files)).split("/")[0]
        zf.writestr(zipfile.ZipInfo(f"{folder}/images/", date_time=(1980, 1, 1, 0, 0, 0)), b"")
    return buffer.getvalue()


def _pandoc(markdown: str, fmt: str, timeout: float) -> bytes:
    path = _tool("pandoc")
    assert path is not None
    with tempfile.TemporaryDirectory(prefix="mathpix-nb-pandoc-") as tmp:
        out = os.path.join(tmp, f"out.{fmt}")
        subprocess.run(
            [path, "-f", "markdown+tex_math_dollars", "-t", fmt, "-o", out],
            input=markdown.encode(),
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        with open(out, "rb") as fh:
            return fh.read()


def _latex_pdf(tex: str, engine: str, timeout: float) -> bytes:
    path = _tool(engine)
    assert path is not None
    with tempfile.TemporaryDirectory(prefix="mathpix-nb-latex-") as tmp:
        src = os.path.join(tmp, "doc.tex")
        with open(src, "w", encoding="utf-8") as fh:
            fh.write(tex)
        args = (
            [path, "--outdir", tmp, src]
            if engine == "tectonic"
            else [path, "-interaction=nonstopmode", "-halt-on-error", "-output-directory", tmp, src]
        )
        subprocess.run(args, capture_output=True, timeout=timeout, check=True, cwd=tmp)
        with open(os.path.join(tmp, "doc.pdf"), "rb") as fh:
            return fh.read()


def convert(
    fmt: str, mmd: str, name: str, *, backend: str = "auto", timeout: float = 60
) -> Converted:
    """``mmd`` as ``fmt`` (one of ``FORMATS``); ``name`` names the files inside zips.

    Blocking (external tools run as subprocesses): call it from a worker thread."""
    blocks = parse_mmd(mmd)
    title = title_of(blocks, name)
    tools = available_converters() if backend == "auto" else {}
    fallback_note = ""
    tool = tools.get(fmt)
    if tool is not None:
        try:
            if fmt == "latex.pdf":
                return Converted(_latex_pdf(to_latex(blocks), tool, timeout), tool)
            return Converted(_pandoc(to_markdown(blocks), fmt, timeout), tool)
        except (OSError, subprocess.SubprocessError) as exc:
            fallback_note = f" ({tool} failed: {exc.__class__.__name__})"
    converter = BUILTIN + fallback_note
    md = to_markdown(blocks)
    page = to_html(blocks, title)
    makers = {
        "md": lambda: md.encode(),
        "html": lambda: page.encode(),
        "docx": lambda: to_docx(blocks, name),
        "pptx": lambda: to_pptx(blocks, name),
        "xlsx": lambda: to_xlsx(blocks, name),
        "pdf": lambda: to_pdf(blocks, name, "html", f"{BUILTIN} pdf writer"),
        "mmd.overlay.pdf": lambda: to_pdf(blocks, name, "html", f"{BUILTIN} pdf writer"),
        "latex.pdf": lambda: to_pdf(blocks, name, "latex", f"{BUILTIN} pdf writer"),
        "tex.zip": lambda: _zip({f"{name}/{name}.tex": to_latex(blocks).encode()}),
        "mmd.zip": lambda: _zip({f"{name}/{name}.mmd": mmd.encode()}),
        "md.zip": lambda: _zip({f"{name}/{name}.md": md.encode()}),
        "html.zip": lambda: _zip({f"{name}/{name}.html": page.encode()}),
    }
    if fmt not in makers:
        raise ValueError(f"unknown conversion format {fmt!r}; known: {', '.join(FORMATS)}")
    return Converted(makers[fmt](), converter)
