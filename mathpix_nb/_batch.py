"""``v3/batch``: many image URLs in one request, results collected by key (I/O-free flows).

``POST v3/batch {"urls": {key: url | {"url", ...per-image options}}, "ocr_behavior":
"text"|"latex", ...options, "callback"?}`` -> ``{"batch_id"}`` (a number in the current
docs, a string in older ones); ``GET v3/batch/{id}`` -> ``{"keys": [...], "results": {key:
result}}``, filled progressively. A key's result may be an error body (the image could not be
downloaded or read): that is that key's error, not the batch's. Done when every key has an
answer (mpxpy's rule). The docs advise waiting about 1 s per 5 images before polling, and
using batch only for work that is not latency-sensitive. Keys only (no app tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from ._events import Event
from ._exceptions import APIError, ConfigurationError, PollTimeoutError, error_for, error_info
from ._images import describe_source
from ._models import LatexResult, OcrResult
from ._options import LatexOptions, TextOptions, check_options, merge_extra
from ._protocol import ClientCore, Flow, Sleep

__all__ = ["BatchFlows", "BatchResult"]

OcrBehavior = Literal["text", "latex"]
_MAX_BODY = 5 * 1024 * 1024
_KEYS = "batch() (v3/batch)"
_LATEX_KEYS = ("latex_styled", "latex_simplified", "latex_normal", "latex_list", "latex")


@dataclass(frozen=True, repr=False)
class BatchResult:
    """The state of a ``v3/batch``: ``results`` (key -> ``OcrResult``, or ``LatexResult`` with
    ``ocr_behavior="latex"``) and ``errors`` (key -> the ``APIError`` of that image) so far;
    ``pending`` keys have no answer yet; ``done`` when none is left."""

    batch_id: str
    keys: tuple[str, ...] = ()
    results: dict[str, OcrResult | LatexResult] = field(default_factory=dict)
    errors: dict[str, APIError] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k not in self.results and k not in self.errors)

    @property
    def done(self) -> bool:
        return bool(self.keys) and not self.pending

    def _convertible_children(self) -> Iterable[Any]:
        return self.results.values()

    def __repr__(self) -> str:
        return (
            f"BatchResult(batch_id={self.batch_id!r}, keys={len(self.keys)}, "
            f"results={len(self.results)}, errors={len(self.errors)}, "
            f"pending={len(self.pending)})"
        )


def _items(urls: Any, what: str) -> list[tuple[str, Any]]:
    if isinstance(urls, Mapping):
        items = list(urls.items())
    elif isinstance(urls, Sequence) and not isinstance(urls, str | bytes):
        items = [(str(i), v) for i, v in enumerate(urls)]
    else:
        raise ConfigurationError(
            f"{what}: urls must be a dict of key -> URL (or a list of URLs, keyed 0, 1, ...), "
            f"got {type(urls).__name__}"
        )
    if not items:
        raise ConfigurationError(f"{what}: urls is empty; pass at least one image URL")
    return items


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be an image URL string, got {value!r:.40}")
    text = value.strip()
    if not text.lower().startswith(("http://", "https://", "data:")):
        raise ConfigurationError(
            f"{where} is {describe_source(text)}, not a URL: v3/batch takes URLs Mathpix can "
            "download (https://, or a data: URI). Fix: for local files use text() per image, "
            "or the bulk helper (df.mathpix.ocr)."
        )
    return text


class BatchFlows:
    """The ``v3/batch`` flows over one ``ClientCore`` (keys, retries, clock)."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def _check(
        self, behavior: str, options: Mapping[str, Any], what: str, also: Iterable[str] = ()
    ) -> dict[str, Any]:
        if behavior not in ("text", "latex"):
            raise ConfigurationError(
                f'{what}: ocr_behavior must be "text" (like v3/text) or "latex" (like the '
                f"legacy v3/latex), got {behavior!r}"
            )
        schema = TextOptions if behavior == "text" else LatexOptions
        checked = check_options(schema, options, what=what, also=also)
        if isinstance(checked.get("tags"), str):
            checked["tags"] = [checked["tags"]]
        return checked

    def submit(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        what: str = "batch_submit()",
    ) -> Flow[str]:
        """``POST v3/batch``; the ``batch_id`` (as a string)."""
        also = ("urls", "ocr_behavior", "extra_options", "timeout", "poll_interval")
        body = self._check(ocr_behavior, options or {}, what, also)
        body = merge_extra(body, extra_options, what=what)
        for clash in ("urls", "ocr_behavior", "src"):
            if clash in body:
                raise ConfigurationError(f"{what}: {clash} cannot be set in extra_options")
        mapped: dict[str, Any] = {}
        for key, value in _items(urls, what):
            if not isinstance(key, str) or not key:
                raise ConfigurationError(f"{what}: url keys must be non-empty strings, got {key!r}")
            where = f"{what}: urls[{key!r}]"
            if isinstance(value, Mapping):
                per = {k: v for k, v in value.items() if k != "url"}
                checked = self._check(ocr_behavior, per, where)
                mapped[key] = {"url": _url(value.get("url"), f"{where}['url']"), **checked}
            else:
                mapped[key] = _url(value, where)
        body.update(urls=mapped, ocr_behavior=ocr_behavior)
        size = len(json.dumps(body, separators=(",", ":")).encode())
        if size > _MAX_BODY:
            raise ConfigurationError(
                f"{what}: the request is {size / 1e6:.1f} MB, over the 5 MB limit (data: URIs "
                "count in full). Fix: split it into smaller batches, or host the images."
            )
        self.core.check_keys(_KEYS)
        core = self.core
        answer = yield from core.call(
            lambda h: core._request("POST", "v3/batch", h, json=body),
            needs_keys=_KEYS,
            source="v3/batch",
        )
        batch_id = answer.get("batch_id")
        if batch_id is None or batch_id == "":
            raise APIError("v3/batch answered without batch_id", body=answer)
        return str(batch_id)

    def status(
        self, batch_id: str | int, *, ocr_behavior: OcrBehavior | None = None
    ) -> Flow[BatchResult]:
        """``GET v3/batch/{id}``: the results so far. ``ocr_behavior`` picks the result type
        (by default each result's shape decides: LaTeX fields make a ``LatexResult``)."""
        ident = str(batch_id).strip()
        if not ident or "/" in ident:
            raise ConfigurationError(
                "batch_status(): batch_id must be the id batch_submit() returned, got "
                f"{batch_id!r:.40}"
            )
        core = self.core
        path = f"v3/batch/{quote(ident, safe='')}"
        body = yield from core.call(
            lambda h: core._request("GET", path, h), needs_keys=_KEYS, source=f"batch {ident}"
        )
        keys = tuple(str(k) for k in body.get("keys") or [])
        raw_results = body.get("results")
        raw_results = raw_results if isinstance(raw_results, Mapping) else {}
        results: dict[str, OcrResult | LatexResult] = {}
        errors: dict[str, APIError] = {}
        for key, item in raw_results.items():
            source = f"batch {ident} item {key!r}"
            if not isinstance(item, Mapping):
                errors[str(key)] = APIError(f"{source}: the answer is not a JSON object")
                continue
            if error_info(item) is not None:
                errors[str(key)] = error_for(200, dict(item), source=source, secrets=core.secrets)
                continue
            latex = ocr_behavior == "latex" or (
                ocr_behavior is None and "text" not in item and any(k in item for k in _LATEX_KEYS)
            )
            results[str(key)] = (
                LatexResult(raw=dict(item), source=source)
                if latex
                else OcrResult(raw=dict(item), source=source)
            )
        return BatchResult(batch_id=ident, keys=keys, results=results, errors=errors, raw=body)

    def wait(
        self,
        batch_id: str | int,
        *,
        ocr_behavior: OcrBehavior | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
        first_wait: float | None = None,
    ) -> Flow[BatchResult]:
        """Poll until every key has a result or an error (default timeout 10 minutes)."""
        for name, value in (("timeout", timeout), ("poll_interval", poll_interval)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                raise ConfigurationError(f"batch_wait(): {name} must be seconds > 0, got {value!r}")
        clock = self.core.clock
        limit = 600.0 if timeout is None else float(timeout)
        deadline = clock.monotonic() + limit
        interval = 1.0 if poll_interval is None else float(poll_interval)
        pause = first_wait if first_wait is not None and poll_interval is None else interval
        while True:
            left = deadline - clock.monotonic()
            if pause > 0 and left > 0:
                pause = min(pause, left)
                self.core.emit(Event("wait", delay=pause, reason="poll"))
                yield Sleep(pause, "poll")
            state = yield from self.status(batch_id, ocr_behavior=ocr_behavior)
            if state.done:
                return state
            if clock.monotonic() >= deadline:
                raise PollTimeoutError(
                    f"batch {state.batch_id} still had {len(state.pending)} of {len(state.keys)} "
                    f"images pending after {limit:g} s. Fix: pass a longer timeout=, or look "
                    f"later with batch_status('{state.batch_id}')."
                )
            pause = interval
            if poll_interval is None:
                interval = min(5.0, interval * 1.5)

    def batch(
        self,
        urls: Mapping[str, str | Mapping[str, Any]] | Sequence[str | Mapping[str, Any]],
        *,
        ocr_behavior: OcrBehavior = "text",
        timeout: float | None = None,
        poll_interval: float | None = None,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
    ) -> Flow[BatchResult]:
        """Submit, then wait (first about 1 s per 5 images, as the docs advise)."""
        batch_id = yield from self.submit(
            urls,
            ocr_behavior=ocr_behavior,
            options=options,
            extra_options=extra_options,
            what="batch()",
        )
        count = len(urls)  # checked by submit()
        return (
            yield from self.wait(
                batch_id,
                ocr_behavior=ocr_behavior,
                timeout=timeout,
                poll_interval=poll_interval,
                first_wait=min(10.0, max(0.5, count / 5)),
            )
        )
