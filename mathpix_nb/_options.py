"""Typed request options: one place that says which options each endpoint takes.

Every surface (clients, bulk, the LangChain loader, the magic, the panel) passes options as
keyword arguments typed by the ``TypedDict``\\ s below (``**options: Unpack[TextOptions]``), so
a type checker flags a typo, and :func:`check_options` refuses it at run time with a
``TypeError`` that names the nearest valid name. Values are checked against the same
annotations (a set where a list belongs, ``"yes"`` for a bool) and must be JSON-serialisable,
so nothing odd reaches the wire or fails deep inside ``json.dumps``.

Options the API gained after this release go through ``extra_options={...}`` (sent as is).
"""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import httpx
from typing_extensions import NotRequired, Required, TypedDict, is_typeddict

from ._clock import Clock
from ._events import Observer
from ._exceptions import ConfigurationError
from ._images import ImagePrep
from ._retry import RetryPolicy

__all__ = [
    "BatchOptions",
    "ClientOptions",
    "ConversionOptions",
    "ConverterResultsFilters",
    "DataOptions",
    "DocxConversionOptions",
    "LatexOptions",
    "MdConversionOptions",
    "OcrResultsFilters",
    "OptionError",
    "PdfConversionOptions",
    "PdfOptions",
    "PdfResultsFilters",
    "RegionBox",
    "StrokesOptions",
    "TextOptions",
    "check_conversion_options",
    "check_keywords",
    "check_options",
    "suggest",
]


class OptionError(ConfigurationError, TypeError):
    """An unknown option name, or a value of the wrong type (names the option and the fix)."""


class RegionBox(TypedDict):
    """The API's ``region`` option: a box in pixels of the image as sent."""

    top_left_x: Required[float]
    top_left_y: Required[float]
    width: Required[float]
    height: Required[float]


class DataOptions(TypedDict, total=False):
    """``data_options``: extra representations in ``data`` and ``html``."""

    include_svg: bool
    include_table_html: bool
    include_latex: bool
    include_tsv: bool
    include_asciimath: bool
    include_mathml: bool


class _CommonImageOptions(TypedDict, total=False):
    metadata: Mapping[str, Any]
    tags: Sequence[str] | str
    callback: Mapping[str, Any]
    region: RegionBox
    include_detected_alphabets: bool
    alphabets_allowed: Mapping[str, bool]
    enable_blue_hsv_filter: bool
    confidence_threshold: float
    auto_rotate_confidence_threshold: float
    improve_mathpix: bool
    """Convenience: ``False`` sends ``metadata.improve_mathpix = false`` (privacy mode)."""


class TextOptions(_CommonImageOptions, total=False):
    """Options of ``v3/text`` (see Mathpix's docs for each; defaults are the API's)."""

    formats: Sequence[str]
    data_options: DataOptions
    confidence_rate_threshold: float
    include_equation_tags: bool
    include_line_data: bool
    include_word_data: bool
    include_smiles: bool
    include_inchi: bool
    include_geometry_data: bool
    include_diagram_text: bool
    include_page_info: bool
    rm_spaces: bool
    rm_fonts: bool
    idiomatic_eqn_arrays: bool
    idiomatic_braces: bool
    numbers_default_to_math: bool
    math_fonts_default_to_math: bool
    math_inline_delimiters: Sequence[str]
    math_display_delimiters: Sequence[str]
    enable_spell_check: bool
    enable_tables_fallback: bool
    fullwidth_punctuation: bool | None
    disable_itemize: bool
    disable_lstlisting: bool
    enable_document_layout: bool


class LatexOptions(_CommonImageOptions, total=False):
    """Options of the legacy ``v3/latex`` endpoint."""

    formats: Sequence[str]
    ocr: Sequence[str]
    format_options: Mapping[str, Any]
    skip_recrop: bool
    beam_size: int
    n_best: int


class PdfOptions(TypedDict, total=False):
    """Options of ``v3/pdf`` (documents); outputs are asked for with ``outputs=``."""

    streaming: bool
    metadata: Mapping[str, Any]
    improve_mathpix: bool
    alphabets_allowed: Mapping[str, bool]
    rm_spaces: bool
    rm_fonts: bool
    idiomatic_eqn_arrays: bool
    include_equation_tags: bool
    include_smiles: bool
    include_chemistry_as_image: bool
    include_diagram_text: bool
    include_page_info: bool
    numbers_default_to_math: bool
    math_inline_delimiters: Sequence[str]
    math_display_delimiters: Sequence[str]
    page_ranges: str
    enable_spell_check: bool
    auto_number_sections: bool
    remove_section_numbering: bool
    preserve_section_numbering: bool
    enable_tables_fallback: bool
    fullwidth_punctuation: bool | None
    conversion_formats: Mapping[str, bool]
    conversion_options: Mapping[str, Any]
    disable_itemize: bool
    disable_lstlisting: bool
    include_page_breaks: bool
    include_hyperlinks: bool
    callback_url: str
    callback_headers: Mapping[str, str]
    callback_events: Sequence[str]


class OcrResultsFilters(TypedDict, total=False):
    """Query filters of ``v3/ocr-results``."""

    tags: Sequence[str] | str
    request_id: str
    pdf_id: str
    app_id: str
    from_date: Any  # str | datetime | date
    to_date: Any
    text: str
    text_display: str
    latex_styled: str
    is_printed: bool
    is_handwritten: bool
    contains_table: bool
    contains_chemistry: bool
    contains_diagram: bool
    contains_triangle: bool
    contains_algorithm: bool
    include_null_results: bool


class ClientOptions(TypedDict, total=False):
    """Keyword options of ``Mathpix(...)`` / ``AsyncMathpix(...)`` (besides ``app_id``,
    ``app_key`` and ``http_client``); surfaces that build a client accept the same.

    * ``app_token``: authenticate with a fixed app token instead of keys.
    * ``token_url`` / ``token_auth``: fetch app tokens from your own token endpoint
      (``token_auth``: a bearer secret string or a dict of headers).
    * ``use_app_tokens``: with keys, mint short-lived tokens from ``v3/app-tokens``;
      ``token_lifetime``: seconds each minted token lives (default 300).
    * ``proxy_url`` / ``proxy_auth``: send every request through a team proxy that adds the
      key (``mathpix-nb token-server --proxy``); ``proxy_auth`` like ``token_auth``.
    * ``region``: ``"global"`` or ``"eu"``; ``base_url``: any host (wins over region);
      ``region_urls``: override the URL of each region.
    * ``timeout``: seconds or an ``httpx.Timeout``; ``limits``: an ``httpx.Limits``.
    * ``max_retries`` (default 4) or ``retry``: a :class:`~mathpix_nb.RetryPolicy`.
    * ``prepare``: image preparation (``True``, ``False`` or an ``ImagePrep``).
    * ``clock``: a :class:`~mathpix_nb.Clock` (tests use ``FakeClock`` to skip waits).
    * ``observers``: callables that receive each :class:`~mathpix_nb.Event`.
    """

    app_token: str | None
    token_url: str | None
    token_auth: str | Mapping[str, str] | None
    use_app_tokens: bool
    token_lifetime: int
    proxy_url: str | None
    proxy_auth: str | Mapping[str, str] | None
    region: str | None
    base_url: str | None
    region_urls: Mapping[str, str] | None
    timeout: float | httpx.Timeout | None
    limits: httpx.Limits | None
    max_retries: int
    retry: RetryPolicy | None
    prepare: bool | ImagePrep | Mapping[str, Any]
    clock: Clock | None
    observers: Iterable[Observer]


# -- run-time checks ---------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(td: type) -> dict[str, Any]:
    hints = _HINTS.get(td)
    if hints is None:
        raw = get_type_hints(td, include_extras=False)
        hints = _HINTS[td] = dict(raw)
    return hints


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_keywords(
    what: str, given: Iterable[str], allowed: Iterable[str], *, hint: str = ""
) -> None:
    """TypeError (an :class:`OptionError`) for the first name in ``given`` not in ``allowed``."""
    allowed = list(allowed)
    known = set(allowed)
    for name in given:
        if name not in known:
            raise OptionError(
                f"{what} got an unexpected keyword argument {name!r}.{suggest(name, allowed)}{hint}"
            )


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "None"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if is_typeddict(tp):
        keys = ", ".join(_hints(tp))
        return f"a dict with {keys}"
    if origin in (Sequence, list, tuple):
        args = get_args(tp)
        inner = _type_name(args[0]) if args else "values"
        return f"a list of {inner}"
    if origin in (Mapping, dict):
        return "a dict"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    """Does ``value`` fit the annotation ``tp`` (the subset of typing our options use)?"""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if origin in (Required, NotRequired):
        return _matches(value, get_args(tp)[0])
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        )
    if tp is str:
        return isinstance(value, str)
    if is_typeddict(tp):
        if not isinstance(value, Mapping):
            return False
        hints = _hints(tp)
        required: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
        if set(value) - set(hints) or required - set(value):
            return False
        return all(_matches(v, hints[k]) for k, v in value.items())
    if origin in (Sequence, list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            return False
        args = get_args(tp)
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            return False
        args = get_args(tp)
        if not args:
            return True
        return all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _json_ready(name: str, value: Any) -> None:
    def refuse(obj: Any) -> Any:
        raise OptionError(
            f"option {name!r} holds a {type(obj).__name__} ({obj!r:.60}), which cannot be sent "
            "as JSON. Fix: use lists, dicts, strings, numbers, booleans or None."
        )

    try:
        json.dumps(value, default=refuse, allow_nan=False)
    except ValueError as exc:  # NaN/inf
        if isinstance(exc, OptionError):
            raise
        raise OptionError(
            f"option {name!r} holds NaN or infinity, which JSON cannot carry. Fix: pass a finite "
            "number."
        ) from None
    except RecursionError:
        raise OptionError(f"option {name!r} is nested too deeply to send as JSON.") from None


def check_options(
    td: type,
    options: Mapping[str, Any],
    *,
    what: str,
    also: Iterable[str] = (),
    json_body: bool = True,
) -> dict[str, Any]:
    """Validate ``options`` against the TypedDict ``td``; return a plain dict without Nones.

    ``also`` names other keyword arguments of ``what`` (suggested for typos too).
    ``improve_mathpix`` is folded into ``metadata``. ``json_body=False`` for query parameters
    (dates may be datetime objects there).
    """
    hints = _hints(td)
    check_keywords(
        what,
        options,
        [*hints, *also],
        hint=" Options the API added later go in extra_options={...}.",
    )
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None and name != "fullwidth_punctuation":
            continue
        tp = hints[name]
        if not _matches(value, tp):
            raise OptionError(
                f"{what}: option {name!r} must be {_type_name(tp)}, got "
                f"{type(value).__name__} {value!r:.60}."
            )
        if json_body:
            _json_ready(name, value)
        if isinstance(value, tuple):
            value = list(value)
        out[name] = value
    improve = out.pop("improve_mathpix", None)
    if improve is not None:
        meta = dict(out.get("metadata") or {})
        meta["improve_mathpix"] = bool(improve)
        out["metadata"] = meta
    return out


def merge_extra(
    options: dict[str, Any], extra: Mapping[str, Any] | None, *, what: str
) -> dict[str, Any]:
    """Add ``extra_options`` (sent as is, JSON-checked) to validated ``options``."""
    if not extra:
        return options
    if not isinstance(extra, Mapping):
        raise OptionError(f"{what}: extra_options must be a dict, got {type(extra).__name__}.")
    for name, value in extra.items():
        if not isinstance(name, str):
            raise OptionError(f"{what}: extra_options keys must be strings, got {name!r}.")
        _json_ready(name, value)
    return {**options, **extra}


# -- options of the other endpoints (v3/strokes, v3/batch, v3/converter, listings) -------------


class StrokesOptions(TextOptions, total=False):
    """Options of ``v3/strokes`` (digital ink): the same as ``v3/text`` (Mathpix's docs: "all
    other request params from v3/text are supported")."""


class BatchOptions(TextOptions, total=False):
    """Options of ``v3/batch`` for every URL: those of ``v3/text`` with
    ``ocr_behavior="text"``, those of ``v3/latex`` with ``ocr_behavior="latex"`` (each call
    checks the set that applies)."""

    ocr: Sequence[str]
    format_options: Mapping[str, Any]
    skip_recrop: bool
    beam_size: int
    n_best: int


class PdfResultsFilters(TypedDict, total=False):
    """Query filters of ``v3/pdf-results`` (dates: ISO strings, ``datetime`` or ``date``)."""

    from_date: Any
    to_date: Any
    app_id: str
    pdf_id: str


class ConverterResultsFilters(TypedDict, total=False):
    """Query filters of ``v3/converter-results`` (past conversions; in mpxpy, not the docs)."""

    from_date: Any
    to_date: Any
    app_id: str


# Conversion options (``conversion_options`` of v3/converter and v3/pdf), per format, as the
# docs' "Conversion Options" list them. The docs' own examples send numbers and booleans as
# strings ("28", "true"), so both are accepted.
class DocxMargins(TypedDict, total=False):
    """Page margins of a docx, in twips (1/20 point)."""

    top: int | str
    right: int | str
    bottom: int | str
    left: int | str
    gutter: int | str


class DocxConversionOptions(TypedDict, total=False):
    font: str
    fontSize: int | str  # half-points (22 = 11 pt)
    language: str
    orientation: Literal["portrait", "landscape"]
    margins: DocxMargins
    htmlTags: bool | str


class TexConversionOptions(TypedDict, total=False):
    """``tex.zip`` (and ``latex.pdf`` takes ``font``, ``fontSize``, ``htmlTags`` of it)."""

    fontSize: str
    font: str
    imagesFolder: str
    load_external_fonts: bool | str
    htmlTags: bool | str


class LatexPdfConversionOptions(TypedDict, total=False):
    fontSize: int | str
    font: str
    htmlTags: bool | str


class HtmlConversionOptions(TypedDict, total=False):
    """``html`` and ``html.zip``."""

    htmlTags: bool | str


class MdConversionOptions(TypedDict, total=False):
    """``md`` and ``md.zip``."""

    math_inline_delimiters: Sequence[str]
    math_display_delimiters: Sequence[str]
    escape_ampersand: bool | str
    escape_dollar: bool | str
    escape_hash: bool | str
    escape_percent: bool | str
    htmlTags: bool | str


class PdfConversionOptions(TypedDict, total=False):
    """``pdf`` (rendered from HTML)."""

    fontSize: int | str
    text_color: str
    background_color: str
    disable_footer: bool | str
    margin: int | str
    custom_css: str
    footnote_compact_refs: bool | str
    resource_load_timeout_sec: float | str
    htmlTags: bool | str


class PptxConversionOptions(TypedDict, total=False):
    fontSize: int | str
    text_color: str
    background_color: str
    margin: int | str
    custom_css: str
    footnote_compact_refs: bool | str
    htmlTags: bool | str


ConversionOptions = TypedDict(
    "ConversionOptions",
    {
        "docx": DocxConversionOptions,
        "tex.zip": TexConversionOptions,
        "latex.pdf": LatexPdfConversionOptions,
        "html": HtmlConversionOptions,
        "html.zip": HtmlConversionOptions,
        "md": MdConversionOptions,
        "md.zip": MdConversionOptions,
        "pdf": PdfConversionOptions,
        "pptx": PptxConversionOptions,
    },
    total=False,
)
"""``conversion_options`` keyed by output format (each key must be a requested format)."""


def check_conversion_options(
    options: Mapping[str, Any] | None, formats: Iterable[str], *, what: str
) -> dict[str, Any]:
    """Validate ``conversion_options`` against :data:`ConversionOptions`: each key a
    requested format that takes options, each inner name known (typos get the near name),
    each value of the documented type. Returns a plain dict (JSON-ready)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise OptionError(
            f"{what}: conversion_options must be a dict keyed by format, e.g. "
            '{"docx": {"font": "Arial"}}, got ' + f"{type(options).__name__}."
        )
    by_format = _hints(ConversionOptions)
    wanted = list(formats)
    out: dict[str, Any] = {}
    for fmt, inner in options.items():
        if fmt not in by_format:
            raise OptionError(
                f"{what}: conversion_options has no settings for {fmt!r}."
                f"{suggest(str(fmt), by_format)} Formats with options: {', '.join(by_format)}."
            )
        if fmt not in wanted:
            raise OptionError(
                f"{what}: conversion_options[{fmt!r}] is for a format not requested. Fix: add "
                f"{fmt!r} to formats, or drop its options (requested: {', '.join(wanted)})."
            )
        where = f"{what}: conversion_options[{fmt!r}]"
        if not isinstance(inner, Mapping):
            raise OptionError(f"{where} must be a dict of settings, got {type(inner).__name__}.")
        hints = _hints(by_format[fmt])
        for name in inner:
            if name not in hints:
                raise OptionError(
                    f"{where} has no setting {name!r}.{suggest(str(name), hints)} Known: "
                    f"{', '.join(hints)}. Settings newer than this release: pass the whole "
                    "dict as extra_options={'conversion_options': {...}}."
                )
        out[fmt] = check_options(by_format[fmt], inner, what=where)
    return out
