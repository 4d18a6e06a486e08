"""``Review``: go through a bulk OCR run worst first, fix rows, and keep the fixes.

``Review(df, image="image_path")`` (or ``out.mathpix.review()``) shows every row of a frame
that ``ocr_frame`` filled: a thumbnail, the text drawn by Mathpix's renderer, confidence,
error id and request id, sorted errors first, then lowest confidence first.

What crosses to the browser, and what is saved in the notebook:

* Synced traits (saved in ``metadata.widgets``) hold only counts, filters, column names and
  plain-words status: never a row's image, never a key or token. Even the rows' text goes by
  custom messages, page by page as the list scrolls, so a 10,000-row review saves a few
  hundred bytes of state.
* Thumbnails (at most ``THUMB_SIDE`` px) and the large image of the row being edited are sent
  on request as binary custom messages, which no widget manager stores.
* Re-OCR runs here, through the client's public ``text()`` and the journal: a crop and
  options already read are answered from the journal; only a new request is paid.
* Corrections go to the DataFrame (``fixed`` / ``reviewed`` columns, in place) and to the
  journal (``Journal.correct``), keyed by the image content and the crop it was read with,
  so reopening a review on a rerun of the same images shows them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import traitlets

from .._images import clip_crop
from .._journal import Correction, Journal
from . import _assets
from ._clients import ClientPool
from ._sources import _raw_bytes, read_image
from ._view import MathpixWidget
from .widget import describe_error

__all__ = ["Review"]

logger = logging.getLogger("mathpix_nb.jupyter")

STATIC = Path(__file__).parent / "static"
#: Thumbnails are at most this many pixels on their long side.
THUMB_SIDE = 192
#: The large image of the row being edited.
DETAIL_SIDE = 1400
#: Bounds of one request from the page (rows of text, thumbnails).
PAGE_MAX = 200
THUMBS_MAX = 64
#: A row's text is cut to this many characters in the list (the edit box has all of it).
LIST_TEXT_MAX = 4000
THUMB_CACHE = 2048

_IMAGE_NAMES = ("image", "image_path", "path", "file", "filename", "url", "src", "source")
_ERROR_ID = re.compile(r"^([a-z][a-z0-9_]*):")


def _review_css() -> str:
    # The panel's sheet (theme variables, buttons, inputs) followed by the review's own.
    return (
        (STATIC / "widgets.css").read_text(encoding="utf-8")
        + "\n"
        + (STATIC / "review.css").read_text(encoding="utf-8")
    )


def _missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT: a cell without a value."""
    if value is None:
        return True
    if isinstance(value, str | bytes | bytearray | memoryview | list | tuple):
        return False
    try:
        return bool(value != value)  # NaN (and NaT) differ from themselves
    except (TypeError, ValueError):  # pd.NA: its comparisons are NA, and bool(NA) raises
        return True


def _text_or_none(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _float_or_nan(value: Any) -> float:
    if _missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _may_hold_images(column: Any) -> bool:
    """Text or object cells (paths, URLs, bytes, PIL images), not numbers or dates."""
    import pandas as pd

    dtype = column.dtype
    return bool(pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


def _error_id(error: str | None) -> str:
    if not error:
        return ""
    found = _ERROR_ID.match(error)
    return found.group(1) if found else "error"


def _crop_list(crop: Any, where: str) -> list[int] | None:
    if crop is None or (not isinstance(crop, list | tuple | str) and _missing(crop)):
        return None
    if isinstance(crop, str):
        parts = [p for p in re.split(r"[,\s]+", crop.strip()) if p]
    else:
        parts = list(crop)
    if not parts:
        return None
    try:
        box = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: crop {crop!r} is not four integers (x, y, w, h)") from None
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{where}: crop {crop!r} must be (x, y, w, h) with w and h above 0")
    return box


class Review(MathpixWidget):
    """A review view of bulk OCR results: worst rows first, fixes written back.

    Args:
        df: the frame ``ocr_frame`` returned (or any frame with a text column). The
            ``fixed`` and ``reviewed`` columns are added to it, in place.
        image: the column holding the images (paths, URLs, bytes, PIL images); default: the
            one column that looks like it (``image``, ``image_path``, ``path``, ``url``...).
        text: the column of OCR text (default ``ocr_text``); confidence, error and request id
            columns are found by the same prefix unless named.
        fixed, reviewed: names of the columns corrections go to.
        crop: the crop every image was sent with ``(x, y, w, h)``, or the name of a column of
            per-row crops; shown on the large image, and the default of a re-OCR.
        client: the client re-OCR goes through (default: from the environment, as the panel).
        journal: a ``Journal``, a path, ``False`` (in memory) or None (the default journal,
            the one ``ocr_frame`` uses): where corrections and re-OCR results are kept.
        options: v3/text options of a re-OCR (default ``formats=["text"]``).

    Example:
        >>> out = df.mathpix.ocr("image_path")          # doctest: +SKIP
        >>> review = out.mathpix.review()               # doctest: +SKIP
        >>> review.export("fixed.parquet")              # doctest: +SKIP
    """

    _esm = _assets.esm("review.js")  # anywidget takes a str
    _css = _review_css()  # type: ignore[assignment]  # anywidget takes the sheet's text

    kind = traitlets.Unicode("review").tag(sync=True)

    # What the page shows and sets (no row data: rows travel by messages).
    total = traitlets.Int(0).tag(sync=True)
    count = traitlets.Int(0).tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    errors_only = traitlets.Bool(False).tag(sync=True)
    unreviewed_only = traitlets.Bool(False).tag(sync=True)
    below = traitlets.Float(None, allow_none=True).tag(sync=True)
    contains = traitlets.Unicode("").tag(sync=True)
    stats = traitlets.Dict(default_value={}).tag(sync=True)
    columns = traitlets.Dict(default_value={}).tag(sync=True)
    has_images = traitlets.Bool(True).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        df: Any,
        *,
        image: str | None = None,
        text: str = "ocr_text",
        confidence: str | None = None,
        error: str | None = None,
        request_id: str | None = None,
        fixed: str = "ocr_text_fixed",
        reviewed: str = "ocr_reviewed",
        crop: Sequence[int] | str | None = None,
        client: Any = None,
        journal: Journal | str | os.PathLike[str] | bool | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Review needs a pandas DataFrame, not {type(df).__name__}")
        if text not in df.columns:
            raise KeyError(
                f"text column {text!r} is not in the DataFrame (columns: {list(df.columns)[:20]})"
                "; pass text=<the OCR text column>"
            )
        prefix = text[: -len("text")] if text.endswith("text") else ""
        self._df = df
        self._cols = {
            "text": text,
            "confidence": self._optional(df, confidence, prefix + "confidence"),
            "error": self._optional(df, error, prefix + "error"),
            "request_id": self._optional(df, request_id, prefix + "request_id"),
            "fixed": str(fixed),
            "reviewed": str(reviewed),
        }
        if len({fixed, reviewed, text}) < 3:
            raise ValueError("fixed=, reviewed= and text= must name three different columns")
        self._image_col = self._image_column(df, image)
        n = len(df)
        self._n = n
        self._texts = [_text_or_none(v) or "" for v in df[text].tolist()]
        self._conf = self._column_values(self._cols["confidence"], _float_or_nan, math.nan)
        self._errors = self._column_values(self._cols["error"], _text_or_none, None)
        self._rids = self._column_values(self._cols["request_id"], _text_or_none, None)
        self._crops = self._row_crops(crop)
        self._sent_crops: dict[int, list[int] | None] = {}  # after a re-OCR with another box
        self._reocr: dict[int, dict[str, Any]] = {}
        self._options = {"formats": ["text"], **dict(options or {})}
        self._client_arg = client
        self._pool: ClientPool | None = None
        self._journal, self._own_journal = self._open_journal(journal)
        self._thumbs: OrderedDict[int, tuple[dict[str, Any], bytes]] = OrderedDict()
        self._lower: list[str] | None = None
        self._fixed: list[str | None] = [None] * n
        self._reviewed = [False] * n
        self._prepare_columns()
        self._apply_journal()
        self._base = self._sorted()
        self._order = list(self._base)
        with self.hold_sync():
            self.total = n
            self.has_images = self._image_col is not None
            self.columns = {k: v for k, v in self._cols.items() if v}
            self._refilter()

    # -- Python API -------------------------------------------------------------------------

    @property
    def frame(self) -> Any:
        """The DataFrame under review (the one passed in, with the fixed/reviewed columns)."""
        return self._df

    @property
    def journal(self) -> Journal:
        """Where corrections and re-OCR results are kept."""
        return self._journal

    @property
    def order(self) -> list[int]:
        """Row positions (``df.iloc``) as the list shows them, after sorting and filters."""
        return list(self._order)

    def edit(self, row: int, text: str) -> None:
        """Set the corrected text of row ``row`` (a position, as ``df.iloc``); marks it reviewed."""
        self._check_row(row)
        if not isinstance(text, str):
            raise TypeError(f"the corrected text must be a str, not {type(text).__name__}")
        self._set_fixed(row, text)

    def accept(self, row: int) -> None:
        """Mark row ``row`` reviewed with its OCR text as it is."""
        self._check_row(row)
        current = self._fixed[row]
        self._set_fixed(row, current if current is not None else self._texts[row])

    def revert(self, row: int) -> None:
        """Forget the correction of row ``row`` (in the frame and in the journal)."""
        self._check_row(row)
        self._fixed[row] = None
        self._reviewed[row] = False
        self._write_row(row)
        key = self._key_of(row)
        if key is not None:
            self._journal.uncorrect(key)
        self._row_changed(row)

    def reocr(
        self,
        row: int,
        *,
        crop: Sequence[int] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """OCR row ``row`` again (another ``crop``, other ``options``) and use its text as the fix.

        ``crop=None`` reads the box the row was read with, ``crop=()`` the whole image.

        Goes through the client's ``text()`` and the journal: the same image, crop and options
        read before are answered from the journal without a request. Returns the
        ``OcrResult``; errors are raised (and shown in the view).
        """
        self._check_row(row)
        return self._reocr_row(row, crop, dict(options or {}))

    def export(self, path: str | os.PathLike[str], *, reviewed_only: bool = False) -> Path:
        """Write the frame (with the fixes) to ``.csv`` or ``.parquet``; returns the path."""
        target = Path(path)
        frame = self._df
        if reviewed_only:
            frame = frame[frame[self._cols["reviewed"]].astype(bool)]
        suffix = target.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(target, index=True)
        elif suffix in (".parquet", ".pq"):
            frame = frame.copy()
            if (
                self._image_col is not None
                and frame[self._image_col]
                .map(lambda v: not isinstance(v, str | os.PathLike) and not _missing(v))
                .any()
            ):
                frame[self._image_col] = frame[self._image_col].map(_describe)
            frame.to_parquet(target, index=True)
        else:
            raise ValueError(f"export to {target.name!r}: use a .csv or a .parquet file name")
        return target

    def close(self) -> None:
        """Close the widget, and the clients and journal it opened (never ones passed in)."""
        if self._pool is not None:
            self._pool.close()
        if self._own_journal:
            with contextlib.suppress(Exception):
                self._journal.close()
        super().close()

    def __repr__(self) -> str:
        done = sum(self._reviewed)
        return (
            f"Review(rows={self._n}, shown={len(self._order)}, reviewed={done}, "
            f"text={self._cols['text']!r}, fixed={self._cols['fixed']!r})"
        )

    # -- set-up -----------------------------------------------------------------------------

    @staticmethod
    def _optional(df: Any, given: str | None, guess: str) -> str:
        if given is not None:
            if given not in df.columns:
                raise KeyError(f"column {given!r} is not in the DataFrame")
            return given
        return guess if guess in df.columns else ""

    def _image_column(self, df: Any, image: str | None) -> str | None:
        if image is not None:
            if image not in df.columns:
                raise KeyError(
                    f"image column {image!r} is not in the DataFrame (columns: "
                    f"{list(df.columns)[:20]}); pass image=<the column of paths or URLs>"
                )
            return image
        ours = {c for c in self._cols.values() if c}
        prefix = self._cols["text"][: -len("text")] if self._cols["text"].endswith("text") else ""
        others = [
            c
            for c in df.columns
            if c not in ours
            and not (prefix and str(c).startswith(prefix))
            and _may_hold_images(df[c])
        ]
        named = [c for c in others if str(c).lower() in _IMAGE_NAMES]
        if len(named) == 1:
            return str(named[0])
        if len(others) == 1:
            return str(others[0])
        if not others:
            return None  # no images: the review shows text only
        raise ValueError(
            f"which column holds the images? {others[:10]} could; pass image=<column name>"
        )

    def _column_values(self, name: str, convert: Any, empty: Any) -> list[Any]:
        if not name:
            return [empty] * self._n
        return [convert(v) for v in self._df[name].tolist()]

    def _row_crops(self, crop: Any) -> list[list[int] | None]:
        if isinstance(crop, str) and crop in self._df.columns:
            return [
                _crop_list(v, f"row {i} of column {crop!r}")
                for i, v in enumerate(self._df[crop].tolist())
            ]
        box = _crop_list(crop, "crop=") if crop is not None else None
        return [box] * self._n

    @staticmethod
    def _open_journal(journal: Any) -> tuple[Journal, bool]:
        if isinstance(journal, Journal):
            return journal, False
        if journal is False:
            return Journal(":memory:"), True
        if journal is True:
            journal = None
        return Journal(journal), True

    def _prepare_columns(self) -> None:
        import pandas as pd

        df, fixed, reviewed = self._df, self._cols["fixed"], self._cols["reviewed"]
        if fixed in df.columns:
            self._fixed = [_text_or_none(v) for v in df[fixed].tolist()]
        else:
            df[fixed] = pd.Series([None] * self._n, index=df.index, dtype=object)
        if reviewed in df.columns:
            self._reviewed = [bool(v) and not _missing(v) for v in df[reviewed].tolist()]
        else:
            df[reviewed] = pd.Series([False] * self._n, index=df.index, dtype=bool)

    def _apply_journal(self) -> None:
        """Corrections of earlier sessions (same images, same crop) come back."""
        found = self._journal.corrections()
        if not found:
            return
        by_rid = {c.request_id: c for c in found.values() if c.request_id}
        sources = {c.source for c in found.values() if c.source}
        for row in range(self._n):
            if self._reviewed[row]:
                continue
            corr: Correction | None = by_rid.get(self._rids[row] or "")
            if corr is not None and self._key_of(row) != corr.key:
                corr = None  # a request id reused for another image/crop: not this row
            if corr is None and self._source_name(row) in sources:
                corr = found.get(self._key_of(row) or "")
            if corr is not None:
                self._fixed[row] = corr.text
                self._reviewed[row] = True
                self._write_row(row)

    # -- rows -------------------------------------------------------------------------------

    def _check_row(self, row: int) -> None:
        if not isinstance(row, int) or not 0 <= row < self._n:
            raise IndexError(f"row {row!r} is not a position of this frame (0..{self._n - 1})")

    def _sorted(self) -> list[int]:
        # Errors first, then lowest confidence first (no confidence counts as lowest).
        def key(i: int) -> tuple[int, float, int]:
            c = self._conf[i]
            return (0 if self._errors[i] else 1, -1.0 if math.isnan(c) else c, i)

        return sorted(range(self._n), key=key)

    def _refilter(self) -> None:
        below = self.below
        needle = self.contains.strip().lower()
        if needle and self._lower is None:
            self._lower = [t.lower() for t in self._texts]
        order = []
        for i in self._base:
            if self.errors_only and not self._errors[i]:
                continue
            if self.unreviewed_only and self._reviewed[i]:
                continue
            if below is not None:
                c = self._conf[i]
                if not math.isnan(c) and c >= below:
                    continue
            if needle:
                hay = self._lower[i] if self._lower is not None else ""
                fixed = self._fixed[i]
                err = self._errors[i]
                if (
                    needle not in hay
                    and (fixed is None or needle not in fixed.lower())
                    and (err is None or needle not in err.lower())
                ):
                    continue
            order.append(i)
        self._order = order
        with self.hold_sync():
            self.count = len(order)
            self.version += 1
            self._update_stats()

    @traitlets.observe("errors_only", "unreviewed_only", "below", "contains")
    def _filters_changed(self, change: dict[str, Any]) -> None:
        if hasattr(self, "_base"):
            self._refilter()

    def _update_stats(self) -> None:
        known = [c for c in self._conf if not math.isnan(c)]
        self.stats = {
            "errors": sum(1 for e in self._errors if e),
            "reviewed": sum(self._reviewed),
            "mean_confidence": round(sum(known) / len(known), 4) if known else None,
        }

    def _row_info(self, row: int, pos: int) -> dict[str, Any]:
        text = self._texts[row]
        conf = self._conf[row]
        info: dict[str, Any] = {
            "pos": pos,
            "row": row,
            "label": str(self._df.index[row]),
            "text": text[:LIST_TEXT_MAX],
            "cut": len(text) > LIST_TEXT_MAX,
            "confidence": None if math.isnan(conf) else conf,
            "error": self._pool_redact(self._errors[row] or ""),
            "error_id": _error_id(self._errors[row]),
            "request_id": self._rids[row] or "",
            "fixed": self._fixed[row],
            "reviewed": self._reviewed[row],
        }
        again = self._reocr.get(row)
        if again is not None:
            info["reocr"] = again
        return info

    def _send_rows(self, start: int, stop: int, version: int) -> None:
        start = max(0, int(start))
        stop = min(len(self._order), int(stop), start + PAGE_MAX)
        rows = [self._row_info(self._order[p], p) for p in range(start, stop)]
        self.send({"type": "rows", "version": version, "start": start, "rows": rows})

    def _row_changed(self, row: int) -> None:
        pos = next((p for p, r in enumerate(self._order) if r == row), -1)
        self.send({"type": "row", "row": self._row_info(row, pos)})
        self._update_stats()

    def _set_fixed(self, row: int, text: str) -> None:
        self._fixed[row] = text
        self._reviewed[row] = True
        self._write_row(row)
        key = self._key_of(row)
        if key is not None:
            self._journal.correct(
                key,
                text,
                request_id=self._rids[row],
                source=self._source_name(row),
            )
        self._row_changed(row)

    def _write_row(self, row: int) -> None:
        df = self._df
        df.iat[row, self._position(self._cols["fixed"])] = self._fixed[row]
        df.iat[row, self._position(self._cols["reviewed"])] = self._reviewed[row]

    def _position(self, column: str) -> int:
        loc = self._df.columns.get_loc(column)
        if not isinstance(loc, int):
            raise ValueError(f"column {column!r} is duplicated in the DataFrame; rename it")
        return loc

    # -- images -----------------------------------------------------------------------------

    def _image_value(self, row: int) -> Any:
        if self._image_col is None:
            return None
        value = self._df[self._image_col].iloc[row]
        return None if _missing(value) else value

    def _source_name(self, row: int) -> str | None:
        value = self._image_value(row)
        if isinstance(value, str | os.PathLike):
            return os.fspath(value) if isinstance(os.fspath(value), str) else None
        return None

    def _content_sha(self, row: int) -> str | None:
        """The image's content hash, as the bulk engine names it (URLs by their address)."""
        value = self._image_value(row)
        if value is None:
            return None
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return "src:" + hashlib.sha256(value.encode()).hexdigest()
        try:
            data, _ = _raw_bytes(value, None)
        except Exception:
            return None
        return hashlib.sha256(data).hexdigest()

    def _key_of(self, row: int) -> str | None:
        """The journal key of a row's correction: image content + the crop it was read with;
        without images, the request id."""
        sha = self._content_sha(row)
        if sha is None:
            rid = self._rids[row]
            return f"request:{rid}" if rid else None
        payload = json.dumps({"content": sha, "crop": self._crops[row]}, sort_keys=True)
        return "review:" + hashlib.sha256(payload.encode()).hexdigest()

    def _thumb(self, row: int) -> tuple[dict[str, Any], bytes]:
        cached = self._thumbs.get(row)
        if cached is not None:
            self._thumbs.move_to_end(row)
            return cached
        from PIL import Image, ImageOps

        value = self._image_value(row)
        if value is None:
            made: tuple[dict[str, Any], bytes] = ({"row": row, "error": "no image"}, b"")
        else:
            try:
                data, _ = _raw_bytes(value, None)
                with Image.open(io.BytesIO(data)) as img:
                    img.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
                    upright = ImageOps.exif_transpose(img) or img
                    small = upright.convert("RGB")
                    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
                buf = io.BytesIO()
                small.save(buf, format="WEBP", quality=70)
                made = (
                    {"row": row, "mime": "image/webp", "w": small.width, "h": small.height},
                    buf.getvalue(),
                )
            except Exception as exc:  # a broken image is a row's problem, not the view's
                made = ({"row": row, "error": describe_error(exc, self._pool_redact)}, b"")
        self._thumbs[row] = made
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return made

    def _send_thumbs(self, rows: list[Any]) -> None:
        heads: list[dict[str, Any]] = []
        buffers: list[bytes] = []
        for r in rows[:THUMBS_MAX]:
            if not isinstance(r, int) or not 0 <= r < self._n:
                continue
            head, data = self._thumb(r)
            if data:
                head = {**head, "buffer": len(buffers)}
                buffers.append(data)
            heads.append(head)
        self.send({"type": "thumbs", "items": heads}, buffers=buffers)

    def _send_detail(self, row: int) -> None:
        value = self._image_value(row)
        crop = self._sent_crops.get(row, self._crops[row])
        head: dict[str, Any] = {"type": "detail", "row": row, "crop": crop or []}
        head["text"] = self._texts[row]
        head["fixed"] = self._fixed[row]
        if value is None:
            self.send({**head, "error": "This row has no image."})
            return
        try:
            loaded = read_image(value)
        except Exception as exc:
            self.send({**head, "error": describe_error(exc, self._pool_redact)})
            return
        preview = loaded.preview
        mime = loaded.preview_mime
        if max(loaded.width, loaded.height) > DETAIL_SIDE:
            from PIL import Image

            with Image.open(io.BytesIO(preview)) as img:
                small = img.convert("RGB")
                small.thumbnail((DETAIL_SIDE, DETAIL_SIDE))
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=85)
            preview, mime = buf.getvalue(), "image/jpeg"
        head.update(
            {"name": loaded.name, "width": loaded.width, "height": loaded.height, "mime": mime}
        )
        self.send(head, buffers=[preview])

    # -- re-OCR -----------------------------------------------------------------------------

    def _pool_redact(self, text: str) -> str:
        from .._exceptions import redact

        if self._pool is not None:
            text = self._pool.redact(text)
        return redact(text)

    def _client(self) -> Any:
        if self._pool is None:
            self._pool = ClientPool(self._client_arg)
        return self._pool.get()

    def _reocr_row(self, row: int, crop: Sequence[int] | None, options: dict[str, Any]) -> Any:
        from .._models import OcrResult

        value = self._image_value(row)
        self.status = "busy"
        self.error = ""
        try:
            if value is None:
                raise ValueError(f"row {row} has no image to read again")
            # None: the box the row was read with; () / []: the whole image.
            box = _crop_list(crop, "re-OCR") if crop is not None else self._crops[row]
            source = value
            if box is not None:  # the client's one crop rule; the image is read once
                loaded = read_image(value)
                box = list(clip_crop(box, loaded.width, loaded.height, source=loaded.name))
                if box == [0, 0, loaded.width, loaded.height]:
                    box = None
                source = loaded.data
            opts = {**self._options, **options}
            client = self._client()
            sha = self._content_sha(row)
            key = None
            if sha is not None:
                key = Journal.make_key(
                    sha,
                    opts,
                    region=str(client.region),
                    crop=box,
                    extra={"prep": repr(client.prep)},
                )
            body = self._journal.lookup(key) if key is not None else None
            if body is not None:
                result = OcrResult(raw=dict(body))
                paid = False
            else:
                result = client.text(source, crop=box, **opts)
                paid = True
                if key is not None:
                    self._journal.done(
                        key, result.raw, request_id=result.request_id, source=self._source_name(row)
                    )
        except Exception as exc:
            self.error = describe_error(exc, self._pool_redact)
            self.status = "error"
            self.send({"type": "reocr", "row": row, "error": self.error})
            raise
        self._sent_crops[row] = box
        self._reocr[row] = {
            "confidence": result.confidence,
            "request_id": result.request_id or "",
            "crop": box or [],
            "cached": not paid,
        }
        self._set_fixed(row, result.text)
        self.status = "done"
        self.send({"type": "reocr", "row": row, "text": result.text, **self._reocr[row]})
        return result

    # -- messages from the page ---------------------------------------------------------------

    def _on_custom(self, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "rows":
                self._send_rows(
                    int(content.get("start", 0)),
                    int(content.get("stop", 0)),
                    int(content.get("version", self.version)),
                )
            elif kind == "thumbs":
                rows = content.get("rows")
                self._send_thumbs(list(rows) if isinstance(rows, list) else [])
            elif kind == "detail":
                row = int(content.get("row", -1))
                self._check_row(row)
                self._send_detail(row)
            elif kind == "edit":
                text = content.get("text")
                self.edit(int(content.get("row", -1)), text if isinstance(text, str) else "")
            elif kind == "accept":
                self.accept(int(content.get("row", -1)))
            elif kind == "revert":
                self.revert(int(content.get("row", -1)))
            elif kind == "reocr":
                crop = content.get("crop")
                options = content.get("options")
                if isinstance(options, str):
                    options = json.loads(options) if options.strip() else {}
                if not isinstance(options, dict):
                    raise ValueError(
                        're-OCR options must be a JSON object, e.g. {"rm_spaces": false}'
                    )
                with contextlib.suppress(Exception):  # shown in the view already
                    self._reocr_row(
                        int(content.get("row", -1)),
                        crop if isinstance(crop, list) else None,  # [] = whole image
                        options,
                    )
        except Exception as exc:
            self.error = describe_error(exc, self._pool_redact)
            self.status = "error"
            logger.info("review: %s", self.error)


def _describe(value: Any) -> Any:
    """A cell parquet can store: paths and URLs as they are, other images by a short name."""
    if _missing(value) or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    size = getattr(value, "size", None)
    return f"<{type(value).__name__} {size}>" if size is not None else repr(value)[:80]
