"""``v3/converter`` (Mathpix Markdown -> docx, tex.zip, pdf, ...) as I/O-free flows.

``Converter(core)`` builds on ``ClientCore`` like ``FilesApi`` does: requests go through
``ClientCore.call`` (keys or the team proxy; retries, ``Retry-After``), waits are
``Sleep(..., "poll")`` steps on the client's clock. ``Mathpix.convert`` /
``AsyncMathpix.convert`` drive them, and so do the results' ``to_docx()``... (``_outputs``).

The API (docs: reference/post-v3-converter): ``POST v3/converter {"mmd", "formats": {ext:
true}, "conversion_options"?}`` -> ``{"conversion_id"}``; ``GET v3/converter/{id}`` ->
``{"status", "conversion_status": {ext: {"status": processing|completed|error,
"error_info"?}}}``; ``GET v3/converter/{id}.{ext}`` downloads a completed format (outputs are
ephemeral: download them at once); ``DELETE v3/converter/{id}`` (in mpxpy, not the docs).
A download that is not ready answers 404 (mpxpy's rule) or 202 (the Go CLI's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ._events import Event
from ._exceptions import ConfigurationError, PdfError, PollTimeoutError, error_info, redact
from ._options import check_conversion_options, merge_extra
from ._outputs import write_atomically
from ._protocol import ClientCore, Flow, Sleep
from ._retry import parse_retry_after

__all__ = ["CONVERTER_FORMATS", "ConversionResult", "Converter", "conversion_formats"]

#: what ``v3/converter`` makes from Mathpix Markdown (``"tex"`` is accepted for ``tex.zip``)
CONVERTER_FORMATS = (
    "docx",
    "md",
    "tex.zip",
    "html",
    "pdf",
    "latex.pdf",
    "pptx",
    "xlsx",
    "mmd.zip",
    "md.zip",
    "html.zip",
)
_ALIASES = {"tex": "tex.zip", "latex_pdf": "latex.pdf"}
_MAX_BODY = 10 * 1024 * 1024  # the docs' limit for a v3/converter request
_FINAL = ("completed", "error")
_KEYS = "convert() (v3/converter)"


def conversion_formats(formats: Iterable[str] | str, *, what: str) -> list[str]:
    """``formats`` checked and normalised (``tex`` -> ``tex.zip``), in order, without repeats."""
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for fmt in formats:
        if not isinstance(fmt, str):
            raise ConfigurationError(f"{what}: formats must be strings, got {fmt!r:.40}")
        name = _ALIASES.get(fmt.lower().lstrip("."), fmt.lower().lstrip("."))
        if name == "mmd":
            raise ConfigurationError(
                f"{what}: 'mmd' is the input, not an output format. Fix: ask for some of "
                f"{', '.join(CONVERTER_FORMATS)}."
            )
        if name not in CONVERTER_FORMATS:
            from ._options import suggest

            raise ConfigurationError(
                f"{what}: unknown format {fmt!r}.{suggest(name, CONVERTER_FORMATS)} Formats: "
                f"{', '.join(CONVERTER_FORMATS)}."
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigurationError(
            f"{what}: formats is empty. Fix: name at least one, e.g. formats=('docx',)."
        )
    return out


@dataclass(frozen=True, repr=False)
class ConversionResult:
    """A finished ``v3/converter`` job: ``outputs`` (format -> bytes) and, for formats that
    failed (with ``errors="keep"``), ``errors`` (format -> the API's ``error_info``)."""

    conversion_id: str
    outputs: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if every requested format was made."""
        return not self.errors

    def text(self, fmt: str) -> str:
        """A text output (``md``, ``html``) decoded as UTF-8."""
        fmt = _ALIASES.get(fmt, fmt)
        if fmt not in self.outputs:
            raise KeyError(f"{fmt!r} is not among the outputs ({', '.join(self.outputs)})")
        return self.outputs[fmt].decode("utf-8", "replace")

    def save(
        self, directory: str | os.PathLike[str], *, stem: str | None = None
    ) -> dict[str, Path]:
        """Write every output to ``directory`` (made if missing) as ``<stem>.<format>``
        (``stem`` defaults to the conversion id); returns format -> path."""
        folder = Path(os.fspath(directory)).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigurationError(f"save(): {folder} is a file, not a folder.")
        name = stem or self.conversion_id
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ConfigurationError(f"save(): stem must be a plain file name, got {name!r}")
        return {
            fmt: write_atomically(folder / f"{name}.{fmt}", data)
            for fmt, data in self.outputs.items()
        }

    def __repr__(self) -> str:
        failed = f", errors={sorted(self.errors)!r}" if self.errors else ""
        return (
            f"ConversionResult(conversion_id={self.conversion_id!r}, "
            f"outputs={sorted(self.outputs)!r}{failed})"
        )


def _seg(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"an id must be a non-empty string, got {value!r:.40}")
    return quote(value.strip(), safe="")


def _check_seconds(what: str, name: str, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise ConfigurationError(f"{what}: {name} must be seconds > 0, got {value!r}")


class Converter:
    """The ``v3/converter`` flows over one ``ClientCore`` (its keys, retries and clock)."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    # -- single steps ------------------------------------------------------------------------
    def submit(
        self,
        mmd: str,
        formats: Iterable[str] | str,
        *,
        conversion_options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        what: str = "convert_submit()",
    ) -> Flow[str]:
        """``POST v3/converter``; the ``conversion_id``."""
        if not isinstance(mmd, str):
            raise ConfigurationError(
                f"{what}: mmd must be the Mathpix Markdown text (a str), got "
                f"{type(mmd).__name__}. Fix: pass result.text, or a PDF result's .mmd."
            )
        if not mmd.strip():
            raise ConfigurationError(f"{what}: mmd is empty; there is nothing to convert.")
        fmts = conversion_formats(formats, what=what)
        self.core.check_keys(_KEYS)
        body: dict[str, Any] = {"mmd": mmd, "formats": {f: True for f in fmts}}
        options = check_conversion_options(conversion_options, fmts, what=what)
        if options:
            body["conversion_options"] = options
        body = merge_extra(body, extra_options, what=what)
        size = len(json.dumps(body, separators=(",", ":")).encode())
        if size > _MAX_BODY:
            raise ConfigurationError(
                f"{what}: the request is {size / 1e6:.1f} MB, over v3/converter's 10 MB limit. "
                "Fix: convert the document in parts."
            )
        core = self.core
        answer = yield from core.call(
            lambda h: core._request("POST", "v3/converter", h, json=body),
            needs_keys=_KEYS,
            source="v3/converter",
        )
        conversion_id = answer.get("conversion_id")
        if not conversion_id:
            raise PdfError("v3/converter answered without a conversion_id", body=answer)
        return str(conversion_id)

    def status(self, conversion_id: str) -> Flow[dict[str, Any]]:
        """``GET v3/converter/{id}``: ``{"status", "conversion_status": {fmt: {...}}}``."""
        path = f"v3/converter/{_seg(conversion_id)}"
        core = self.core
        return (
            yield from core.call(
                lambda h: core._request("GET", path, h),
                needs_keys=_KEYS,
                source=f"conversion {conversion_id}",
            )
        )

    def _download_once(self, conversion_id: str, ext: str) -> Flow[httpx.Response]:
        path = f"v3/converter/{_seg(conversion_id)}.{ext}"
        core = self.core
        response, _ = yield from core.call_raw(
            lambda h: core._request("GET", path, h), needs_keys=_KEYS
        )
        return response

    def _downloaded(self, response: httpx.Response, what: str) -> bytes | None:
        """The bytes of a download, None if not ready yet, or the mapped error."""
        if response.status_code == 202:
            return None
        is_json = "json" in response.headers.get("content-type", "")
        if response.status_code == 200 and not is_json:
            return bytes(response.content)
        found = error_info(response.content) if is_json else None
        if response.status_code == 404 and found is None:
            return None  # a status body: still converting (mpxpy's rule)
        if response.status_code == 200 and found is None:
            return bytes(response.content)  # a JSON output that is not an error
        self.core._raise_for(response, response.content, what, False)
        raise AssertionError("unreachable")  # pragma: no cover

    def download(self, conversion_id: str, ext: str) -> Flow[bytes]:
        """``GET v3/converter/{id}.{ext}`` once; ``PdfError`` (``not_ready``) while it converts."""
        ext = "mmd" if ext == "mmd" else conversion_formats([ext], what="convert_download()")[0]
        what = f"conversion {conversion_id}.{ext}"
        response = yield from self._download_once(conversion_id, ext)
        data = self._downloaded(response, what)
        if data is None:
            raise PdfError(
                f"not_ready: {what} is still converting (HTTP {response.status_code}). Fix: wait "
                "until convert_status() says completed (convert() does this for you).",
                status_code=response.status_code,
                error_id="not_ready",
            )
        return data

    def delete(self, conversion_id: str) -> Flow[dict[str, Any]]:
        """``DELETE v3/converter/{id}``: the final status with ``deleted_at``."""
        path = f"v3/converter/{_seg(conversion_id)}"
        core = self.core
        return (
            yield from core.call(
                lambda h: core._request("DELETE", path, h),
                needs_keys=_KEYS,
                source=f"conversion {conversion_id}",
            )
        )

    # -- the whole job -----------------------------------------------------------------------
    def _waiter(self, what: str, timeout: float | None, poll_interval: float | None) -> Any:
        clock = self.core.clock
        limit = 300.0 if timeout is None else float(timeout)
        deadline = clock.monotonic() + limit
        state = {"interval": 0.25 if poll_interval is None else float(poll_interval)}

        def wait(hint: float | None = None, pending: str = "") -> Flow[None]:
            left = deadline - clock.monotonic()
            if left <= 0:
                raise PollTimeoutError(
                    f"{what} was not ready within {limit:g} s{pending}. Fix: pass a longer "
                    "timeout=, or fetch it later with convert_status() / convert_download()."
                )
            pause = max(0.0, min(hint if hint is not None else state["interval"], left))
            self.core.emit(Event("wait", delay=pause, reason="poll"))
            yield Sleep(pause, "poll")
            if poll_interval is None:
                state["interval"] = min(3.0, state["interval"] * 1.5)

        return wait

    def convert(
        self,
        mmd: str,
        formats: Iterable[str] | str,
        *,
        conversion_options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> Flow[ConversionResult]:
        """Submit, poll until every format is completed or failed, download each as soon as
        it is ready. ``errors="raise"``: a failed format raises ``PdfError``; ``"keep"``:
        it is reported in ``ConversionResult.errors`` beside the formats that worked."""
        what = "convert()"
        if errors not in ("raise", "keep"):
            raise ConfigurationError(f"{what}: errors must be 'raise' or 'keep', got {errors!r}")
        _check_seconds(what, "timeout", timeout)
        _check_seconds(what, "poll_interval", poll_interval)
        fmts = conversion_formats(formats, what=what)
        conversion_id = yield from self.submit(
            mmd,
            fmts,
            conversion_options=conversion_options,
            extra_options=extra_options,
            what=what,
        )
        wait = self._waiter(f"conversion {conversion_id}", timeout, poll_interval)
        outputs: dict[str, bytes] = {}
        failed: dict[str, dict[str, Any]] = {}
        status: dict[str, Any] = {}
        while True:
            status = yield from self.status(conversion_id)
            per_format = status.get("conversion_status")
            per_format = per_format if isinstance(per_format, Mapping) else {}
            overall = status.get("status")
            hint: float | None = None
            for fmt in fmts:
                if fmt in outputs or fmt in failed:
                    continue
                entry = per_format.get(fmt)
                entry = entry if isinstance(entry, Mapping) else {}
                state = entry.get("status")
                if state == "error" or overall == "error":
                    info = entry.get("error_info") or status.get("error_info") or {}
                    failed[fmt] = dict(info) if isinstance(info, Mapping) else {"error": info}
                elif state == "completed":
                    response = yield from self._download_once(conversion_id, fmt)
                    data = self._downloaded(response, f"conversion {conversion_id}.{fmt}")
                    if data is None:
                        hint = parse_retry_after(response.headers.get("retry-after"))
                    else:
                        outputs[fmt] = data
            if all(f in outputs or f in failed for f in fmts):
                break
            pending = [f for f in fmts if f not in outputs and f not in failed]
            yield from wait(hint, f" ({', '.join(pending)} still converting)")
        if failed and errors == "raise":
            raise self._error(conversion_id, failed, status)
        return ConversionResult(
            conversion_id=conversion_id, outputs=outputs, errors=failed, raw=dict(status)
        )

    def _error(
        self, conversion_id: str, failed: Mapping[str, Mapping[str, Any]], status: Mapping[str, Any]
    ) -> PdfError:
        fmt, info = next(iter(failed.items()))
        error_id = str(info.get("id") or "conversion_error")
        text = str(info.get("message") or info.get("error") or "conversion failed")
        others = f" (also failed: {', '.join(list(failed)[1:])})" if len(failed) > 1 else ""
        return PdfError(
            redact(
                f"{error_id}: conversion {conversion_id} to {fmt} failed: {text}{others}. Fix: "
                "check the Mathpix Markdown; pass errors='keep' to keep the formats that worked.",
                self.core.secrets,
            ),
            error_id=error_id,
            detail=dict(info),
            body=dict(status),
        )

    # -- results as documents (OcrResult / PdfResult .to_docx() ...) -------------------------
    def result_output(
        self,
        result: Any,
        fmt: str,
        *,
        conversion_options: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Flow[bytes]:
        """``result`` (an ``OcrResult`` or ``PdfResult``) as ``fmt``.

        An OCR result's Mathpix Markdown goes through ``v3/converter``. A PDF result uses what
        it already downloaded, else the PDF's own output (``GET v3/pdf/{id}.{fmt}``, waiting
        while it converts); conversion options, or a PDF Mathpix no longer has, go through
        ``v3/converter`` with the document's mmd.
        """
        from ._models import OcrResult, PdfResult

        what = f"to_{fmt.replace('.', '_')}()"
        _check_seconds(what, "timeout", timeout)
        name = conversion_formats([fmt], what=what)[0]
        if isinstance(result, PdfResult):
            if name in result.outputs and not conversion_options:
                return result.outputs[name]
            if not conversion_options:
                data = yield from self._pdf_output(result.pdf_id, name, timeout)
                if data is not None:
                    return data
            mmd = result.mmd
            if mmd is None:
                mmd = (yield from self.core.pdf_download(result.pdf_id, "mmd")).decode(
                    "utf-8", "replace"
                )
        elif isinstance(result, OcrResult):
            mmd = result.text
            if not mmd.strip():
                raise ConfigurationError(
                    f"{what}: the result has no text to convert (input: {result.source})."
                )
        else:
            raise ConfigurationError(
                f"{what}: only OcrResult and PdfResult convert, got {type(result).__name__}"
            )
        done = yield from self.convert(
            mmd, [name], conversion_options=conversion_options, timeout=timeout
        )
        return done.outputs[name]

    def _pdf_output(self, pdf_id: str, ext: str, timeout: float | None) -> Flow[bytes | None]:
        """A PDF's output ``ext``, waiting while it converts; None when the PDF or the format
        is not there (a 404 with an error id: deleted, expired, or a format the deployment
        does not make after the fact); a failed conversion raises."""
        core = self.core
        core.check_keys("PDF download")
        wait = self._waiter(f"PDF {pdf_id}.{ext}", timeout, None)
        path = f"v3/pdf/{_seg(pdf_id)}.{ext}"
        while True:
            response, _ = yield from core.call_raw(
                lambda h: core._request("GET", path, h), needs_keys="PDF download"
            )
            is_json = "json" in response.headers.get("content-type", "")
            found = error_info(response.content) if is_json else None
            if response.status_code == 200 and found is None:
                return bytes(response.content)
            if response.status_code == 404 and found is not None and found.id != "conversion_error":
                return None  # unknown PDF, or a format it does not have: convert its mmd
            if response.status_code in (202, 404) and found is None:
                yield from wait(parse_retry_after(response.headers.get("retry-after")))
                continue
            core._raise_for(response, response.content, f"PDF {pdf_id}.{ext}", False)
