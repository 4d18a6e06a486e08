"""Bulk OCR of many images (a DataFrame column, a list of paths, a CSV) with resume.

``ocr_frame(df, "image_path")`` / ``await aocr_frame(...)`` / ``ocr_series(s)``; the pandas
accessors in :mod:`mathpix_nb.pandas` call these. The engine (:mod:`._engine`) is pandas-free.
See ``docs/bulk.md``.
"""

from __future__ import annotations

from .._journal import Journal, JournalEntry
from ._dask import ocr_dask
from ._engine import BulkConfig, BulkSummary, RowResult
from ._frame import aocr_frame, aocr_series, ocr_frame, ocr_series

__all__ = [
    "BulkConfig",
    "BulkSummary",
    "Journal",
    "JournalEntry",
    "RowResult",
    "aocr_frame",
    "aocr_series",
    "ocr_dask",
    "ocr_frame",
    "ocr_series",
]
