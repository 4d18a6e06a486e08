"""mathpix_nb: Mathpix OCR for notebooks, DataFrames and LangChain.

The public front door. Integrations that need optional dependencies live in submodules
(``mathpix_nb.server``, ``mathpix_nb.pandas``, ``mathpix_nb.langchain``,
``mathpix_nb.jupyter``, ``mathpix_nb.tokens``) and are imported only when used.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

# Core names are imported eagerly once the core modules exist; see docs/architecture.md.
try:  # pragma: no cover - replaced by plain imports once the core lands
    from ._client import AsyncMathpix, Mathpix
    from ._exceptions import *  # noqa: F403
    from ._exceptions import __all__ as _exc_all
    from ._images import ImagePrep, PreparedImage, prepare_image
    from ._models import AppToken, LatexResult, OcrResult, PdfResult
except ImportError:  # core not written yet
    _exc_all = []


def __getattr__(name: str) -> Any:
    # CropPanel needs the [jupyter] extra; import it only when asked for.
    if name == "CropPanel":
        from .jupyter import CropPanel

        return CropPanel
    raise AttributeError(f"module 'mathpix_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mathpix_nb``: register the ``%mathpix`` / ``%%mathpix`` magics."""
    from .jupyter._magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .jupyter._magic import unload_ipython_extension as _unload

    _unload(ipython)


__all__ = sorted(
    [
        "AppToken",
        "AsyncMathpix",
        "CropPanel",
        "ImagePrep",
        "LatexResult",
        "Mathpix",
        "OcrResult",
        "PdfResult",
        "PreparedImage",
        "__version__",
        "load_ipython_extension",
        "prepare_image",
        "unload_ipython_extension",
        *_exc_all,
    ],
    key=str.lower,
)
