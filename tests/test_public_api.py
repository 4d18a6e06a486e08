"""The front door: every public name is exported once, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import mathpix_nb

EXPECTED_CORE = {
    "APIError",
    "AppToken",
    "AsyncMathpix",
    "ConfigurationError",
    "CropPanel",
    "ImageError",
    "ImagePrep",
    "LatexResult",
    "Mathpix",
    "MathpixError",
    "NotAllowedError",
    "OcrResult",
    "PdfResult",
    "PreparedImage",
    "RateLimitError",
    "TransportError",
    "clip_crop",
    "load_ipython_extension",
    "prepare_image",
}


def test_all_is_sorted_unique_and_resolvable() -> None:
    names = mathpix_nb.__all__
    assert list(names) == sorted(names), "__all__ is not sorted"
    assert len(names) == len(set(names))
    assert set(names) >= EXPECTED_CORE
    exceptions = __import__("mathpix_nb._exceptions", fromlist=["__all__"])
    assert set(exceptions.__all__) <= set(names), "an exception class is not re-exported"
    for name in names:
        assert getattr(mathpix_nb, name) is not None, name


def test_import_does_not_pull_optional_surfaces() -> None:
    """`import mathpix_nb` must not import pandas, widgets, LangChain or the server."""
    code = (
        "import sys, mathpix_nb; "
        "heavy = [m for m in ('pandas', 'anywidget', 'ipywidgets', 'langchain_core', "
        "'starlette', 'uvicorn', 'rapidocr', 'onnxruntime') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mathpix_nb", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("demo", "ocr", "serve", "token-server"):
        assert command in out.stdout
