"""The ``df.mathpix`` / ``s.mathpix`` pandas accessors; ``import mathpix_nb.pandas`` registers them.

::

    import pandas as pd
    import mathpix_nb.pandas  # noqa: F401  (registers the accessors)

    df = pd.DataFrame({"image_path": ["a.png", "b.jpg", "https://example.com/c.png"]})
    out = df.mathpix.ocr("image_path")          # new DataFrame + ocr_text, ocr_latex_styled, ...
    out.attrs["mathpix_summary"]                 # done / cached / failed / retried
    texts = df["image_path"].mathpix.ocr()       # just the result columns, same index
    out = await df.mathpix.aocr("image_path")    # inside async code
    out.mathpix.review()                         # look through it worst first, fix rows

Kept out of ``import mathpix_nb`` so the core never imports pandas.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .bulk import aocr_frame, aocr_series, ocr_frame, ocr_series

__all__ = ["MathpixFrameAccessor", "MathpixSeriesAccessor"]


@pd.api.extensions.register_dataframe_accessor("mathpix")
class MathpixFrameAccessor:
    """``df.mathpix.ocr(column, ...)``: bulk OCR of a column; returns a new DataFrame."""

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        if not isinstance(pandas_obj, pd.DataFrame):  # pragma: no cover - pandas guarantees
            raise AttributeError("the mathpix accessor works on a DataFrame or a Series")
        self._obj = pandas_obj

    def ocr(self, column: Any, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
        """A copy of the DataFrame with OCR result columns for ``column`` (see ``ocr_frame``)."""
        return ocr_frame(self._obj, column, client=client, **kwargs)

    async def aocr(self, column: Any, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Async form of :meth:`ocr` (see ``aocr_frame``)."""
        return await aocr_frame(self._obj, column, client=client, **kwargs)

    def review(
        self,
        *,
        image: str | None = None,
        text: str = "ocr_text",
        fixed: str = "ocr_text_fixed",
        reviewed: str = "ocr_reviewed",
        crop: Any = None,
        client: Any = None,
        journal: Any = None,
    ) -> Any:
        """Open the review view of these OCR results (``mathpix_nb.Review``, needs [jupyter]).

        Worst rows first; fixes go to the ``fixed`` / ``reviewed`` columns of this frame (in
        place) and to the journal.
        """
        from . import Review

        return Review(
            self._obj,
            image=image,
            text=text,
            fixed=fixed,
            reviewed=reviewed,
            crop=crop,
            client=client,
            journal=journal,
        )


@pd.api.extensions.register_series_accessor("mathpix")
class MathpixSeriesAccessor:
    """``s.mathpix.ocr(...)``: OCR every cell; returns the result columns on the same index."""

    def __init__(self, pandas_obj: pd.Series) -> None:
        if not isinstance(pandas_obj, pd.Series):  # pragma: no cover
            raise AttributeError("the mathpix accessor works on a DataFrame or a Series")
        self._obj = pandas_obj

    def ocr(self, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
        """A new DataFrame of result columns (``ocr_text`` ...) aligned to the series' index."""
        return ocr_series(self._obj, client=client, **kwargs)

    async def aocr(self, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Async form of :meth:`ocr`."""
        return await aocr_series(self._obj, client=client, **kwargs)
