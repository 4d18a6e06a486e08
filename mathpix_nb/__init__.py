"""mathpix_nb: Mathpix OCR for notebooks, DataFrames and LangChain.

The public front door. Integrations that need optional dependencies live in submodules
(``mathpix_nb.server``, ``mathpix_nb.pandas``, ``mathpix_nb.langchain``,
``mathpix_nb.jupyter``, ``mathpix_nb.tokens``, ``mathpix_nb.bulk``) and are imported only
when used, so ``import mathpix_nb`` needs nothing but httpx and Pillow.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _models
from ._account import AppTokenInfo, OcrUsage, UsageRecord, UsageSummary
from ._batch import BatchResult
from ._client import AsyncMathpix, Mathpix
from ._clock import Clock, FakeClock, SystemClock
from ._conversions import ConversionResult
from ._events import Event, Observer
from ._exceptions import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    ErrorInfo,
    ImageError,
    InvalidRequestError,
    MathpixError,
    NotAllowedError,
    NotFoundError,
    OcrError,
    PdfError,
    PollTimeoutError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    SubmissionUncertain,
    TokenError,
    TransportError,
    error_for,
    error_info,
    is_fatal,
)
from ._files_api import FileEntry, FilesJob, FileStatus, JobSubmission, verify_webhook
from ._images import ImagePrep, PreparedImage, clip_crop, prepare_image
from ._journal import Journal, JournalEntry
from ._models import AppToken, LatexResult, OcrResult, PdfResult
from ._options import (
    BatchOptions,
    ClientOptions,
    ConversionOptions,
    DataOptions,
    LatexOptions,
    OcrResultsFilters,
    OptionError,
    PdfOptions,
    PdfResultsFilters,
    StrokesOptions,
    TextOptions,
)
from ._protocol import PdfStatusHook
from ._retry import RetryPolicy
from ._strokes import AsyncStrokesSession, StrokesError, StrokesInput, StrokesSession
from ._types import Crop, DocumentInput, ImageInput
from ._version import __version__


def __getattr__(name: str) -> Any:
    # CropPanel, InkPad and Review need the [jupyter] extra: imported only when asked for.
    if name == "CropPanel":
        from .jupyter import CropPanel

        return CropPanel
    if name == "InkPad":
        from .jupyter import InkPad

        return InkPad
    if name == "Review":
        from .jupyter import Review

        return Review
    raise AttributeError(f"module 'mathpix_nb' has no attribute {name!r}")


def _notebook_bundle(result: Any, bundle: dict[str, Any]) -> dict[str, Any]:
    # Results display with Mathpix's renderer in a Jupyter kernel ([jupyter] extra); the
    # surface is imported on the first display there, never by `import mathpix_nb`.
    if "ipykernel" not in sys.modules:
        return bundle
    try:
        from .jupyter._display import rich_bundle
    except ImportError:  # no [jupyter] extra: the static Markdown is the display
        return bundle
    return rich_bundle(result, bundle)


def _notebook_view(result: Any) -> Any:
    try:
        from .jupyter._display import rich_view
    except ImportError:
        return None
    return rich_view(result)


_models.set_display_hooks(bundle=_notebook_bundle, view=_notebook_view)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mathpix_nb``: register the ``%mathpix`` / ``%%mathpix`` magics."""
    from .jupyter._magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext mathpix_nb``: remove the magics again."""
    from .jupyter._magic import unload_ipython_extension as _unload

    _unload(ipython)


__all__ = [
    "APIError",
    "AppToken",
    "AppTokenInfo",
    "AsyncMathpix",
    "AsyncStrokesSession",
    "AuthenticationError",
    "BatchOptions",
    "BatchResult",
    "ClientOptions",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ConversionOptions",
    "ConversionResult",
    "Crop",
    "CropPanel",
    "DataOptions",
    "DocumentInput",
    "ErrorInfo",
    "Event",
    "FakeClock",
    "FileEntry",
    "FileStatus",
    "FilesJob",
    "ImageError",
    "ImageInput",
    "ImagePrep",
    "InkPad",
    "InvalidRequestError",
    "JobSubmission",
    "Journal",
    "JournalEntry",
    "LatexOptions",
    "LatexResult",
    "Mathpix",
    "MathpixError",
    "NotAllowedError",
    "NotFoundError",
    "Observer",
    "OcrError",
    "OcrResult",
    "OcrResultsFilters",
    "OcrUsage",
    "OptionError",
    "PdfError",
    "PdfOptions",
    "PdfResult",
    "PdfResultsFilters",
    "PdfStatusHook",
    "PollTimeoutError",
    "PreparedImage",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeout",
    "RetryPolicy",
    "Review",
    "ServerError",
    "StrokesError",
    "StrokesInput",
    "StrokesOptions",
    "StrokesSession",
    "SubmissionUncertain",
    "SystemClock",
    "TextOptions",
    "TokenError",
    "TransportError",
    "UsageRecord",
    "UsageSummary",
    "__version__",
    "clip_crop",
    "error_for",
    "error_info",
    "is_fatal",
    "load_ipython_extension",
    "prepare_image",
    "unload_ipython_extension",
    "verify_webhook",
]
