"""Account endpoints as I/O-free flows: usage, PDF history and deletion, app-token lookups.

* ``GET v3/ocr-usage`` -> :class:`OcrUsage` (records per usage type and time bucket) and
  :class:`UsageSummary` (images, PDF pages and strokes a time window cost; the hook a bulk run
  calls at its end);
* ``GET v3/pdf-results`` and ``GET v3/converter-results`` (one page; the clients iterate),
  ``DELETE v3/pdf/{id}``;
* ``GET v3/ocr-results?request_id=`` polled until an async ``submit()`` has its result;
* ``GET`` / ``DELETE v3/app-tokens/{token}`` -> :class:`AppTokenInfo`.

All need keys (or the team proxy): Mathpix refuses app tokens for historical and account data.
A token looked up or deleted travels in the URL path (Mathpix's design): our events, logs and
messages mask it, but an HTTP-level log (httpx's INFO log, a proxy's access log) records it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal
from urllib.parse import quote

from ._events import Event
from ._exceptions import ConfigurationError, PollTimeoutError, error_for, error_info
from ._models import AppToken, OcrResult, _expires_at_seconds
from ._options import ConverterResultsFilters, PdfResultsFilters, check_options
from ._protocol import ClientCore, Flow, Sleep, _query_value

__all__ = [
    "GROUP_BY",
    "TIMESPANS",
    "AccountFlows",
    "AppTokenInfo",
    "OcrUsage",
    "UsageRecord",
    "UsageSummary",
]

#: ``group_by`` values of ``v3/ocr-usage`` (docs: reference/ocr-usage)
GROUP_BY = ("usage_type", "request_args_hash", "app_id")
#: ``timespan`` values (mpxpy and Mathpix's CLI; the docs page lists none)
TIMESPANS = ("hour", "day", "month", "year")
Timespan = Literal["hour", "day", "month", "year"]
GroupBy = Literal["usage_type", "request_args_hash", "app_id"]
DateLike = str | datetime | date | float | int


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class UsageRecord:
    """One row of ``v3/ocr-usage``: ``count`` requests of ``usage_type`` in the bucket that
    starts at ``from_date`` (``app_ids`` / ``request_args_hashes``: who and which options)."""

    usage_type: str | None
    count: int
    from_date: str | None = None
    app_ids: tuple[str, ...] = ()
    request_args_hashes: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> UsageRecord:
        kind = body.get("usage_type")
        return cls(
            usage_type=None if kind is None else str(kind),
            count=_count(body.get("count")),
            from_date=None if body.get("from_date") is None else str(body["from_date"]),
            app_ids=_strings(body.get("app_id")),
            request_args_hashes=_strings(body.get("request_args_hash")),
            raw=dict(body),
        )


@dataclass(frozen=True)
class OcrUsage:
    """The answer of ``v3/ocr-usage``: ``records`` (iterate the object itself, too)."""

    records: tuple[UsageRecord, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.records)

    def by_type(self) -> dict[str, int]:
        """Counts summed per usage type (``image``, ``image-async``, ``pdf-page``, ...)."""
        out: dict[str, int] = {}
        for record in self.records:
            key = record.usage_type or "unknown"
            out[key] = out.get(key, 0) + record.count
        return out

    def __iter__(self) -> Any:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def _kind(usage_type: str) -> str:
    name = usage_type.lower()
    if name.startswith("image") or name == "batch":
        return "images"
    if "pdf" in name or "page" in name:
        return "pages"
    if name.startswith("strokes"):
        return "strokes"
    return "other"


@dataclass(frozen=True)
class UsageSummary:
    """What a time window cost: ``images`` (usage types ``image*``: v3/text, v3/latex, batch
    items), ``pages`` (PDF pages), ``strokes`` (``strokes`` requests and strokes sessions),
    ``other`` (anything else), and ``by_type`` with the API's own names.

    Usage is account-wide: other processes with the same keys in the window count too."""

    from_date: str
    to_date: str | None
    images: int = 0
    pages: int = 0
    strokes: int = 0
    other: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_usage(cls, usage: OcrUsage, from_date: str, to_date: str | None) -> UsageSummary:
        totals = {"images": 0, "pages": 0, "strokes": 0, "other": 0}
        by_type = usage.by_type()
        for kind, count in by_type.items():
            totals[_kind(kind)] += count
        return cls(from_date=from_date, to_date=to_date, by_type=by_type, **totals)

    @property
    def total(self) -> int:
        return self.images + self.pages + self.strokes + self.other

    def __str__(self) -> str:
        parts = [
            f"{self.images:,} image{'s' if self.images != 1 else ''}",
            f"{self.pages:,} PDF page{'s' if self.pages != 1 else ''}",
        ]
        if self.strokes:
            parts.append(f"{self.strokes:,} strokes request{'s' if self.strokes != 1 else ''}")
        if self.other:
            parts.append(f"{self.other:,} other")
        until = self.to_date or "now"
        return f"{', '.join(parts)} ({self.from_date} to {until})"


@dataclass(frozen=True, repr=False)
class AppTokenInfo:
    """``GET`` / ``DELETE v3/app-tokens/{token}``: who a token belongs to and when it expires
    (``expires_at``: epoch seconds; not in a delete's answer). The repr masks the token."""

    app_token: str
    expires_at: float | None = None
    app_id: str | None = None
    group_id: str | None = None
    user_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AppTokenInfo:
        expires = body.get("app_token_expires_at")
        return cls(
            app_token=str(body.get("app_token") or ""),
            expires_at=None if expires is None else _expires_at_seconds(expires),
            app_id=None if body.get("app_id") is None else str(body["app_id"]),
            group_id=None if body.get("group_id") is None else str(body["group_id"]),
            user_id=None if body.get("user_id") is None else str(body["user_id"]),
            raw=dict(body),
        )

    def __repr__(self) -> str:
        expires = "None" if self.expires_at is None else f"{self.expires_at:.0f}"
        return (
            f"AppTokenInfo(app_token='***', expires_at={expires}, app_id={self.app_id!r}, "
            f"group_id={self.group_id!r}, user_id={self.user_id!r})"
        )


# --------------------------------------------------------------------------- input checks


def iso_date(name: str, value: DateLike | None, *, what: str) -> str | None:
    """``value`` (ISO string, datetime, date, or epoch seconds) as an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{what}: {name} must be a date, got {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=timezone.utc).isoformat()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"{what}: {name} must be an ISO 8601 date or datetime (e.g. 2024-05-01 or "
                f"2024-05-01T12:00:00Z), got {value!r:.40}"
            ) from None
        return text
    raise ConfigurationError(
        f"{what}: {name} must be an ISO string, datetime, date or epoch seconds, got "
        f"{type(value).__name__}"
    )


def _paging(what: str, page: int, per_page: int, max_per_page: int) -> None:
    for name, value, top in (("page", page, None), ("per_page", per_page, max_per_page)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{what}: {name} must be an int >= 1, got {value!r}")
        if top is not None and value > top:
            raise ConfigurationError(f"{what}: {name} must be at most {top}, got {value}")


def _token_text(token: str | AppToken, what: str) -> str:
    text = token.app_token if isinstance(token, AppToken) else token
    if not isinstance(text, str) or not text.strip() or "/" in text:
        raise ConfigurationError(
            f"{what}: pass the app token (a 'token_...' string or an AppToken), got "
            f"{type(token).__name__}"
        )
    return text.strip()


# --------------------------------------------------------------------------- the flows


class AccountFlows:
    """Usage, PDF history and app-token flows over one ``ClientCore``."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def _get(
        self, path: str, what: str, *, params: Mapping[str, Any] | None = None
    ) -> Flow[dict[str, Any]]:
        core = self.core
        return (
            yield from core.call(
                lambda h: core._request("GET", path, h, params=params),
                needs_keys=what,
                source=what,
            )
        )

    # -- usage -----------------------------------------------------------------------------
    def ocr_usage(
        self,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        group_by: GroupBy | Sequence[GroupBy] | None = None,
        timespan: Timespan | None = None,
        app_id: str | None = None,
        usage_type: str | None = None,
        request_args_hash: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> Flow[OcrUsage]:
        """``GET v3/ocr-usage`` (one page: raise ``per_page`` up to 1000 for more rows)."""
        what = "ocr_usage()"
        params: dict[str, Any] = {}
        for name, value in (("from_date", from_date), ("to_date", to_date)):
            text = iso_date(name, value, what=what)
            if text is not None:
                params[name] = text
        groups = _strings(group_by)
        for group in groups:
            if group not in GROUP_BY:
                from ._options import suggest

                raise ConfigurationError(
                    f"{what}: group_by {group!r} is not one of {', '.join(GROUP_BY)}."
                    f"{suggest(group, GROUP_BY)}"
                )
        if groups:
            params["group_by"] = list(groups)
        if timespan is not None:
            if timespan not in TIMESPANS:
                raise ConfigurationError(
                    f"{what}: timespan must be one of {', '.join(TIMESPANS)}, got {timespan!r}"
                )
            params["timespan"] = timespan
        for name, text in (
            ("app_id", app_id),
            ("usage_type", usage_type),
            ("request_args_hash", request_args_hash),
        ):
            if text is not None:
                if not isinstance(text, str) or not text:
                    raise ConfigurationError(f"{what}: {name} must be a non-empty string")
                params[name] = text
        _paging(what, page, per_page, 1000)
        params.update(page=page, per_page=per_page)
        body = yield from self._get("v3/ocr-usage", what, params=params)
        rows = body.get("ocr_usage")
        records = tuple(
            UsageRecord.from_body(r)
            for r in (rows if isinstance(rows, list) else [])
            if isinstance(r, Mapping)
        )
        return OcrUsage(records=records, raw=body)

    def usage_summary(
        self, from_date: DateLike, to_date: DateLike | None = None
    ) -> Flow[UsageSummary]:
        """What ``[from_date, to_date)`` cost, summed per kind from ``v3/ocr-usage``.

        ``from_date`` is taken from the start of its second (usage is counted per second or
        coarser), so a run's first requests are never left out."""
        what = "usage_summary()"
        if from_date is None:
            raise ConfigurationError(f"{what}: from_date is required (when the run started)")
        start = _floor_second(from_date, what)
        end = iso_date("to_date", to_date, what=what)
        usage = yield from self.ocr_usage(
            from_date=start, to_date=end, group_by="usage_type", timespan="year", per_page=1000
        )
        return UsageSummary.from_usage(usage, start, end)

    # -- PDFs ------------------------------------------------------------------------------
    def pdf_results_page(
        self, filters: Mapping[str, Any], page: int, per_page: int
    ) -> Flow[list[dict[str, Any]]]:
        """One page of ``v3/pdf-results`` (``filters`` as in ``PdfResultsFilters``)."""
        what = "pdf_results()"
        checked = check_options(
            PdfResultsFilters, filters, what=what, also=("page", "per_page"), json_body=False
        )
        for name in ("from_date", "to_date"):
            if name in checked:
                checked[name] = iso_date(name, checked[name], what=what)
        _paging(what, page, per_page, 100)
        params: dict[str, Any] = {k: _query_value(v) for k, v in checked.items()}
        params.update(page=page, per_page=per_page)
        body = yield from self._get("v3/pdf-results", what, params=params)
        rows = body.get("pdfs")
        return [dict(r) for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []

    def converter_results_page(
        self, filters: Mapping[str, Any], page: int, per_page: int
    ) -> Flow[list[dict[str, Any]]]:
        """One page of ``v3/converter-results`` (past conversions: ``id``, ``status``,
        ``created_at``, ``request_args``); in mpxpy, not in the docs."""
        what = "converter_results()"
        checked = check_options(
            ConverterResultsFilters, filters, what=what, also=("page", "per_page"), json_body=False
        )
        for name in ("from_date", "to_date"):
            if name in checked:
                checked[name] = iso_date(name, checked[name], what=what)
        _paging(what, page, per_page, 100)
        params: dict[str, Any] = {k: _query_value(v) for k, v in checked.items()}
        params.update(page=page, per_page=per_page)
        body = yield from self._get("v3/converter-results", what, params=params)
        rows = body.get("documents")
        return [dict(r) for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []

    # -- async image results ---------------------------------------------------------------
    def ocr_result(
        self,
        request_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> Flow[OcrResult]:
        """The result of an async ``submit()``: polls ``v3/ocr-results?request_id=`` until it
        is there (default timeout 5 minutes); an image that failed raises its error."""
        what = "ocr_result()"
        if not isinstance(request_id, str) or not request_id.strip():
            raise ConfigurationError(f"{what}: request_id must be the id submit() returned")
        for name, value in (("timeout", timeout), ("poll_interval", poll_interval)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                raise ConfigurationError(f"{what}: {name} must be seconds > 0, got {value!r}")
        core = self.core
        limit = 300.0 if timeout is None else float(timeout)
        deadline = core.clock.monotonic() + limit
        interval = 0.5 if poll_interval is None else float(poll_interval)
        source = f"async request {request_id}"
        while True:
            rows = yield from core.ocr_results_page({"request_id": request_id}, 1, 1)
            result = rows[0].get("result") if rows else None
            if isinstance(result, Mapping):
                if error_info(result) is not None:
                    raise error_for(200, dict(result), source=source, secrets=core.secrets)
                return OcrResult(raw=dict(result), source=source)
            left = deadline - core.clock.monotonic()
            if left <= 0:
                raise PollTimeoutError(
                    f"{source} had no result after {limit:g} s. Fix: pass a longer timeout=, "
                    f"or look later with ocr_results(request_id='{request_id}')."
                )
            pause = min(interval, left)
            core.emit(Event("wait", delay=pause, reason="poll"))
            yield Sleep(pause, "poll")
            if poll_interval is None:
                interval = min(5.0, interval * 1.5)

    def pdf_delete(self, pdf_id: str) -> Flow[dict[str, Any]]:
        """``DELETE v3/pdf/{id}``: the status before deletion, with ``deleted_at``."""
        if not isinstance(pdf_id, str) or not pdf_id.strip():
            raise ConfigurationError(
                f"pdf_delete(): pdf_id must be a non-empty string, got {pdf_id!r:.40}"
            )
        core = self.core
        path = f"v3/pdf/{quote(pdf_id.strip(), safe='')}"
        return (
            yield from core.call(
                lambda h: core._request("DELETE", path, h),
                needs_keys="pdf_delete()",
                source=f"PDF {pdf_id}",
            )
        )

    # -- app tokens ------------------------------------------------------------------------
    def _token_call(self, method: str, token: str | AppToken, what: str) -> Flow[AppTokenInfo]:
        text = _token_text(token, what)
        core = self.core
        path = f"v3/app-tokens/{quote(text, safe='')}"
        body = yield from core.call(
            lambda h: core._request(method, path, h),
            needs_keys=what,
            source="v3/app-tokens/token_***",
        )
        return AppTokenInfo.from_body(body)

    def app_token_get(self, token: str | AppToken) -> Flow[AppTokenInfo]:
        """``GET v3/app-tokens/{token}``; an unknown or deleted token raises ``TokenError``
        (``token_unknown``; Mathpix answers HTTP 200 with that error)."""
        return (yield from self._token_call("GET", token, "app_token_get()"))

    def app_token_delete(self, token: str | AppToken) -> Flow[AppTokenInfo]:
        """``DELETE v3/app-tokens/{token}``: the token stops working at once."""
        return (yield from self._token_call("DELETE", token, "app_token_delete()"))


def _floor_second(value: DateLike, what: str) -> str:
    text = iso_date("from_date", value, what=what)
    assert text is not None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # pragma: no cover - iso_date checked it
        return text
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.replace(microsecond=0).isoformat()
    return text
