"""pandas front end of the bulk engine: ``ocr_frame`` / ``aocr_frame`` / ``ocr_series``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._image_pixels import check_crop
from .._journal import Journal
from .._options import TextOptions, check_options
from . import _api
from ._bridge import run_blocking
from ._engine import BulkConfig, BulkSummary, RowResult, run_bulk

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mathpix_nb.bulk")

FIELDS = ("text", "latex_styled", "confidence", "request_id", "error")
#: columns added when their format is asked for (``data``: the list as JSON text)
OPTIONAL_FIELDS = ("html", "data")
DEFAULT_FORMATS = ("text", "latex_styled")


def result_fields(options: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The result columns of a run with these v3/text options (``html``/``data`` when asked)."""
    formats = (options or {}).get("formats") or DEFAULT_FORMATS
    return FIELDS + tuple(f for f in OPTIONAL_FIELDS if f in formats)


#: ocr_frame's own keywords (suggested for typos next to the v3/text options)
_RUN_KEYWORDS = (
    "client",
    "options",
    "improve_mathpix",
    "crop",
    "prepare",
    "prefix",
    "progress",
    "journal",
    *BulkConfig.__dataclass_fields__,
)


def _api_options(options: Mapping[str, Any], improve_mathpix: bool | None) -> dict[str, Any]:
    opts = dict(options)
    if "async" in opts or "tags" in opts:
        raise TypeError(
            "ocr_frame sets 'async' and 'tags' itself (tags name the run and row); "
            "remove them from the options"
        )
    opts.setdefault("formats", list(DEFAULT_FORMATS))
    if improve_mathpix is not None:
        meta = dict(opts.get("metadata") or {})
        meta["improve_mathpix"] = bool(improve_mathpix)
        opts["metadata"] = meta
    return opts


def _open_journal(
    journal: Journal | str | Any | None, *, only_record: bool = False
) -> tuple[Journal, bool]:
    """The run's journal. A damaged file is set aside and replaced (the API's record refills
    it), unless it is the only record (``improve_mathpix=False``): then it is an error."""
    if isinstance(journal, Journal):
        return journal, False
    if journal is False:
        return Journal(":memory:"), True
    if only_record:
        return Journal(journal), True
    return Journal.open_or_set_aside(journal), True


def _to_frame(
    index: pd.Index, rows: list[RowResult], prefix: str, fields: tuple[str, ...] = FIELDS
) -> pd.DataFrame:
    import pandas as pd

    cols: dict[str, Any] = {}
    for name in fields:
        values = [getattr(r, name) for r in rows]
        # confidence: nullable float; text columns: object with None for "no value"
        dtype = "Float64" if name == "confidence" else object
        cols[prefix + name] = pd.Series(values, index=index, dtype=dtype)
    return pd.DataFrame(cols, index=index)


def _column(df: pd.DataFrame, column: Any) -> pd.Series:
    if column not in df.columns:
        raise KeyError(
            f"column {column!r} is not in the DataFrame (columns: "
            f"{list(df.columns)[:20]}); pass the name of the column holding image "
            "paths or URLs"
        )
    series: pd.Series[Any] = df[column]
    if getattr(series, "ndim", 1) != 1:
        raise ValueError(
            f"column name {column!r} is duplicated in the DataFrame; rename the "
            "columns so it is unique"
        )
    return series


def _check_prefix(
    df: pd.DataFrame | None, prefix: str, fields: tuple[str, ...] = FIELDS + OPTIONAL_FIELDS
) -> None:
    if df is None:
        return
    clash = [prefix + f for f in fields if prefix + f in df.columns]
    if clash:
        raise ValueError(
            f"the DataFrame already has result columns {clash}; pass another "
            "prefix= (e.g. prefix='ocr2_') or drop them first"
        )


class _BulkCall:
    """Everything one ``ocr_frame`` / ``aocr_frame`` call needs; shared by both forms."""

    def __init__(self, client: Any, kwargs: dict[str, Any], *, asynchronous: bool) -> None:
        options = dict(kwargs.pop("options", None) or {})
        improve = kwargs.pop("improve_mathpix", None)
        self.crop = kwargs.pop("crop", None)
        self.prepare = kwargs.pop("prepare", None)
        self.prefix = kwargs.pop("prefix", "ocr_")
        self.progress = kwargs.pop("progress", True)
        self.journal_arg = kwargs.pop("journal", None)
        fields = {f for f in BulkConfig.__dataclass_fields__}
        cfg_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
        self.config = BulkConfig(**cfg_kw)
        options.update(kwargs)  # anything else is a v3/text option (rm_spaces=..., ...)
        self.options = _api_options(options, improve)
        self.fields = result_fields(self.options)
        meta = self.options.get("metadata") or {}
        if (
            self.journal_arg is False
            and isinstance(meta, Mapping)
            and meta.get("improve_mathpix") is False
        ):
            raise ValueError(
                "journal=False with improve_mathpix=False: Mathpix keeps no copy of such "
                "results, so only the journal can resume the run without paying again; "
                "pass journal=<path> (or leave the default)"
            )
        #: the dataset's jobs listed once by the caller (Dask); None: the run lists them
        self.known: Any = None
        # run-wide settings are refused once, before any row is read (not once per row)
        check_options(TextOptions, self.options, what="ocr_frame()", also=_RUN_KEYWORDS)
        if self.crop is not None:
            check_crop(self.crop)
        # resolve credentials now (before any row is read): errors name the fix
        self.client, self.own_http = _api.client_for_run(
            client, connections=self.config.concurrency + 4
        )
        self.asynchronous = asynchronous

    async def run(
        self, values: pd.Series, on_rows_done: Any
    ) -> tuple[list[RowResult], BulkSummary]:
        meta = self.options.get("metadata") or {}
        private = isinstance(meta, Mapping) and meta.get("improve_mathpix") is False
        journal, own_journal = _open_journal(self.journal_arg, only_record=private)
        api = _api.Api(self.client, concurrency=self.config.concurrency, own_http=self.own_http)
        try:
            return await run_bulk(
                iter(values),
                api=api,
                options=self.options,
                crop=self.crop,
                prepare=self.prepare,
                journal=journal,
                config=self.config,
                on_rows_done=on_rows_done,
                known=self.known,
            )
        finally:
            await api.aclose()
            if own_journal:
                journal.close()


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="mathpix OCR", unit="img", leave=True)


def _finish(
    series: pd.Series,
    df: pd.DataFrame | None,
    rows: list[RowResult],
    summary: BulkSummary,
    prefix: str,
    fields: tuple[str, ...] = FIELDS,
) -> pd.DataFrame:
    result = _to_frame(series.index, rows, prefix, fields)
    if df is not None:
        import pandas as pd

        out = pd.concat([df, result], axis=1)  # a new frame; the input is left untouched
    else:
        out = result
    # a plain dict: attrs must stay JSON-serialisable (parquet stores them)
    out.attrs["mathpix_summary"] = dataclasses.asdict(summary)
    log.info("%s", summary)
    return out


def ocr_series(series: pd.Series, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
    """OCR every cell of ``series`` (paths, URLs, bytes, PIL images); see :func:`ocr_frame`.

    Returns a new DataFrame with the result columns only, on the series' index.
    """
    return _run_sync(series, None, client, kwargs)


def ocr_frame(df: pd.DataFrame, column: Any, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
    """OCR the images named in ``df[column]``; return a new DataFrame with result columns.

    Each cell may be a file path, ``http(s)`` URL (sent as ``src``), bytes or PIL image.
    Images are sent as async v3/text jobs tagged with the run and row, and collected from
    v3/ocr-results in pages; a journal on disk makes reruns resume without resending.

    Args:
        df: the input; it is not modified.
        column: the column holding the images.
        client: a ``Mathpix`` (or ``AsyncMathpix``) client; default: built from the environment.
        prefix: result column prefix (default ``"ocr_"``): ``ocr_text``, ``ocr_latex_styled``,
            ``ocr_confidence``, ``ocr_request_id``, ``ocr_error``; with ``formats`` holding
            ``"html"`` / ``"data"`` also ``ocr_html`` / ``ocr_data`` (the data list as JSON
            text: ``json.loads`` it).
        concurrency: images read/prepared/uploaded at once (default 8).
        poll_interval: seconds between ``v3/ocr-results`` polls (default 1).
        timeout: deadline in seconds for the whole run (default none); rows still pending get
            a ``poll_timeout`` error and are collected by a rerun without resending.
        journal: a path, a ``Journal``, ``False`` (in memory) or None (default:
            ``$MATHPIX_NB_HOME/journal.sqlite3``). A local cache of the API's own record:
            without it a rerun still pays for nothing Mathpix accepted (see ``dataset``),
            except with ``improve_mathpix=False``, where the journal is the only record.
        dataset: name of the dataset the jobs belong to (default ``"default"``). Every job is
            tagged with it, so a rerun whose journal is lost, deleted or on another machine
            reads the dataset's accepted jobs back from v3/ocr-results (one request per
            ``per_page`` jobs) instead of paying again; datasets sharing images dedupe when
            they share the name. ``recover=False`` turns that listing off.
        progress: show a tqdm progress bar (default True).
        crop: ``(x, y, w, h)`` applied to every image; prepare: image preparation options.
        improve_mathpix: False keeps images out of Mathpix's stores (forces the synchronous
            fallback, since such results cannot be read back from v3/ocr-results).
        options: a dict of v3/text options; other keyword arguments are v3/text options too
            (``formats``, ``rm_spaces``, ``math_inline_delimiters``...).

    The run's summary (:class:`BulkSummary` as a dict: rows, done, cached, failed, retried,
    submitted, requests, elapsed...) is in ``result.attrs["mathpix_summary"]``.
    """
    series = _column(df, column)
    _check_prefix(df, kwargs.get("prefix", "ocr_"))
    return _run_sync(series, df, client, kwargs)


def _run_sync(
    series: pd.Series,
    df: pd.DataFrame | None,
    client: Any,
    kwargs: dict[str, Any],
    *,
    known: Any = None,
) -> pd.DataFrame:
    job = _BulkCall(client, dict(kwargs), asynchronous=False)
    job.known = known
    bar = _progress_bar(len(series), job.progress)
    counter = [0, 0]  # rows finished (worker thread), rows shown (this thread)

    def on_rows_done(n: int) -> None:
        counter[0] += n

    def tick() -> None:
        if bar is not None and counter[0] != counter[1]:
            bar.update(counter[0] - counter[1])
            counter[1] = counter[0]

    try:
        rows, summary = run_blocking(lambda: job.run(series, on_rows_done), on_tick=tick)
        tick()
    finally:
        if bar is not None:
            bar.close()
    if job.progress is True:
        print(summary)
    return _finish(series, df, rows, summary, job.prefix, job.fields)


async def aocr_frame(
    df: pd.DataFrame, column: Any, *, client: Any = None, **kwargs: Any
) -> pd.DataFrame:
    """Async form of :func:`ocr_frame` for code already running in an event loop."""
    series = _column(df, column)
    _check_prefix(df, kwargs.get("prefix", "ocr_"))
    return await _run_async(series, df, client, kwargs)


async def aocr_series(series: pd.Series, *, client: Any = None, **kwargs: Any) -> pd.DataFrame:
    """Async form of :func:`ocr_series`."""
    return await _run_async(series, None, client, kwargs)


async def _run_async(
    series: pd.Series, df: pd.DataFrame | None, client: Any, kwargs: dict[str, Any]
) -> pd.DataFrame:
    job = _BulkCall(client, dict(kwargs), asynchronous=True)
    bar = _progress_bar(len(series), job.progress)
    try:
        rows, summary = await job.run(series, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if job.progress is True:
        print(summary)
    return _finish(series, df, rows, summary, job.prefix, job.fields)


def ocr_dask(ddf: Any, column: Any, **kwargs: Any) -> Any:
    """Moved to :mod:`mathpix_nb.bulk._dask` (kept here so old imports work)."""
    from ._dask import ocr_dask as impl

    return impl(ddf, column, **kwargs)
