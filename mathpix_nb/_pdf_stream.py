"""I/O-free reading of ``GET v3/pdf/{pdf_id}/stream``: pages of a PDF as Mathpix finishes them.

A PDF submitted with ``"streaming": true`` can be read page by page while the rest is still
being converted. Each message is one finished page::

    {"version": "...", "text": "<the page's Mathpix Markdown>", "page_idx": 3,
     "pdf_selected_len": 20, "pdf_id": "..."}

``page_idx`` counts the *selected* pages from 1 (after ``page_ranges``); the docs say the
order is not guaranteed. Mathpix documents the endpoint as server-sent events
(``data: {json}``); the local server also speaks one JSON object per line to clients that do
not ask for ``text/event-stream``. :class:`PdfStreamReader` takes either framing, a bounded
message at a time, and turns an error envelope (in the body or as a message) into the same
``APIError`` every other endpoint raises. The clients' ``pdf_stream()`` send its request and
feed it the bytes; nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from ._events import Event, EventKind
from ._exceptions import PdfError, error_for

if TYPE_CHECKING:
    from ._protocol import ClientCore

__all__ = ["MAX_ERROR_BODY_BYTES", "MAX_STREAM_MESSAGE_BYTES", "PdfStreamReader"]

MAX_ERROR_BODY_BYTES = 1_000_000
"""How much of a non-200 stream answer is read to report its error."""

MAX_STREAM_MESSAGE_BYTES = 32_000_000
"""The longest one page message may be (a page of MMD is a few KB; a bound, not a budget)."""


class PdfStreamReader:
    """Request, checks and message decoding for one PDF's page stream."""

    def __init__(
        self, core: ClientCore, pdf_id: str, *, max_message_bytes: int = MAX_STREAM_MESSAGE_BYTES
    ) -> None:
        if not isinstance(pdf_id, str) or not pdf_id.strip() or "/" in pdf_id:
            raise PdfError(
                f"pdf_stream() needs the pdf_id that pdf_submit() returned, got {pdf_id!r}."
            )
        core.check_keys("PDF stream")
        self.core = core
        self.pdf_id = pdf_id
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._data: list[str] = []  # the data: lines of the SSE event being read
        self._whole_body = False

    @property
    def source(self) -> str:
        return f"PDF {self.pdf_id} stream"

    def request(self) -> httpx.Request:
        """The GET to send (keys or team proxy; SSE asked for, as Mathpix documents)."""
        headers = self.core.credentials.key_headers("PDF stream")
        return self.core._request(
            "GET",
            f"v3/pdf/{self.pdf_id}/stream",
            {**headers, "accept": "text/event-stream"},
        )

    def check(self, response: httpx.Response) -> None:
        """Before reading: refuse a non-200 answer (the caller reads its body for
        :meth:`error`); a plain ``application/json`` answer is read whole (an error envelope
        such as ``pdf_streaming_not_enabled``, or a single message)."""
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        self._whole_body = ctype == "application/json"

    def error(self, response: httpx.Response, body: bytes) -> Exception:
        """The mapped error for a non-200 answer whose (bounded) body is ``body``."""
        return error_for(response.status_code, body, source=self.source, secrets=self.core.secrets)

    def transport_error(self, exc: Exception, request: httpx.Request) -> Exception:
        """A broken or timed-out stream as the client's ``TransportError`` (not retried:
        pages already read stay read; the caller polls for the rest)."""
        return self.core._transport_error(exc, request, 1)

    def emit(self, kind: EventKind, request: httpx.Request, **fields: Any) -> None:
        self.core.emit(
            Event(kind, method=request.method, path=request.url.path, attempt=0, **fields)
        )

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The complete messages in ``data`` (plus what earlier calls left unfinished)."""
        self._buffer += data
        if self._whole_body:
            if len(self._buffer) > self.max_message_bytes:
                raise self._too_large()
            return []
        messages: list[dict[str, Any]] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_message_bytes:
                    raise self._too_large()
                return messages
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            message = self._line(line.decode("utf-8", "replace"))
            if message is not None:
                messages.append(message)

    def finish(self) -> list[dict[str, Any]]:
        """Messages left when the stream ended (a last line without its newline)."""
        rest = bytes(self._buffer).decode("utf-8", "replace")
        self._buffer.clear()
        if self._whole_body:
            return [self._message(rest)] if rest.strip() else []
        messages = []
        for line in [*rest.split("\n"), ""]:
            message = self._line(line.rstrip("\r"))
            if message is not None:
                messages.append(message)
        return messages

    # -- framing -----------------------------------------------------------------------------
    def _line(self, line: str) -> dict[str, Any] | None:
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
            if sum(len(d) for d in self._data) > self.max_message_bytes:
                raise self._too_large()
            return None
        if not line.strip():  # SSE: a blank line ends the event
            if not self._data:
                return None
            text, self._data = "\n".join(self._data), []
            return self._message(text)
        if line.startswith((":", "event:", "id:", "retry:")):
            return None  # SSE comments (keep-alives) and fields we do not need
        return self._message(line)  # NDJSON: one object per line

    def _message(self, text: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
        except ValueError:
            raise PdfError(
                f"{self.source}: a message is not JSON ({text[:80]!r}). Fix: read the PDF with "
                "pdf_status() / pdf_download() instead.",
                error_id="pdf_stream_error",
            ) from None
        if not isinstance(message, dict):
            raise PdfError(
                f"{self.source}: a message is not a JSON object ({text[:80]!r}).",
                error_id="pdf_stream_error",
            )
        if "error" in message or "error_info" in message:
            raise error_for(200, message, source=self.source, secrets=self.core.secrets)
        return message

    def _too_large(self) -> PdfError:
        self._buffer.clear()
        self._data.clear()
        return PdfError(
            f"{self.source}: one message is larger than {self.max_message_bytes:,} bytes; "
            "stopped reading. Fix: read the PDF with pdf_status() / pdf_download().",
            error_id="pdf_stream_error",
        )
