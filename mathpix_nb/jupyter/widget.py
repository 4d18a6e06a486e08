"""``CropPanel``: load an image, drag a box, OCR the box in the kernel, see the result.

What crosses to the browser, and what is saved in the notebook:

* Synced traits (saved in ``metadata.widgets`` by JupyterLab and nbclient) hold only what is
  safe to keep: options, the crop box, the result's Mathpix Markdown (the page renders it
  with Mathpix's renderer, see ``_view.py``), its tables as CSV, history summaries,
  plain-words status and errors. Never a key, a token, or (by default) image bytes.
* The image reaches the browser as a *custom message* with a binary buffer, which no widget
  manager stores; uploads, drops and pastes come back the same way. ``keep_image=True`` opts
  in to also keeping a preview in the saved state (so a saved notebook shows the picture).
* OCR runs here, in the kernel, through the client core (which cuts the crop before upload).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import traitlets

from .._config import normalize_region
from .._exceptions import ConfigurationError
from .._images import clip_crop
from .._mmd import result_mmd
from ._clients import ClientPool
from ._sources import LoadedImage, read_image, rotated
from ._view import MathpixWidget, table_summaries

__all__ = ["FORMATS", "CropPanel", "describe_error"]

logger = logging.getLogger("mathpix_nb.jupyter")
logger.addHandler(logging.NullHandler())

#: v3/text output formats the panel offers, with the label shown in the page.
FORMATS: dict[str, str] = {
    "text": "Mathpix Markdown",
    "latex_styled": "LaTeX",
    "html": "HTML",
    "data": "Data (AsciiMath, MathML)",
}


def describe_error(exc: BaseException, redact: Callable[[str], str] = str) -> str:
    """A plain-words sentence for the panel; ``redact`` masks the clients' secrets."""
    from .. import _exceptions as e

    name = type(exc).__name__
    message = str(exc) or name
    if isinstance(exc, e.QuotaExceededError):
        text = f"Your Mathpix monthly quota is used up: {message}"
    elif isinstance(exc, e.RateLimitError):
        wait = exc.retry_after
        text = "Too many requests right now; " + (
            f"try again in {wait:g} s." if wait else "wait a moment and try again."
        )
    elif isinstance(exc, e.AuthenticationError):
        text = f"Mathpix did not accept the credentials: {message}"
    elif isinstance(exc, e.OcrError):
        text = f"Mathpix could not read this image: {message}"
    elif isinstance(exc, e.TransportError):
        text = f"Could not reach the OCR server: {message}"
    elif isinstance(exc, e.MathpixError | ValueError):
        text = message
    else:
        text = f"Something went wrong ({name}): {message}"
    return e.redact(redact(text))


class CropPanel(MathpixWidget):
    """A crop-and-OCR panel for notebooks.

    Args:
        image: optional image to start with (path, http(s) URL, bytes, file object, PIL image).
        client: a ``Mathpix`` client, or ``{region: Mathpix}``. Without one, credentials
            from the environment are used; with none, a local offline engine (and the panel
            says so).
        formats: v3/text formats to ask for (subset of ``FORMATS``).
        region: "global" or "eu" (data residency), among the client's regions.
        keep_image: also keep a preview of the image in the saved widget state (off by
            default: image bytes are private).
        options: other v3/text options sent with every request (e.g. ``rm_spaces=False``).

    Example:
        >>> panel = CropPanel("page.png", client=Mathpix())   # doctest: +SKIP
        >>> panel            # drag a box, press OCR              # doctest: +SKIP
        >>> panel.result.markdown()                               # doctest: +SKIP
    """

    kind = traitlets.Unicode("panel").tag(sync=True)

    # Inputs (the browser sets them too).
    crop = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    rotation = traitlets.Int(0).tag(sync=True)
    formats = traitlets.List(traitlets.Unicode(), default_value=["text"]).tag(sync=True)
    region = traitlets.Unicode("global").tag(sync=True)

    # Configuration shown in the page.
    available_formats = traitlets.Dict(default_value=dict(FORMATS)).tag(sync=True)
    regions = traitlets.List(traitlets.Unicode(), default_value=["global"]).tag(sync=True)
    engine_note = traitlets.Unicode("").tag(sync=True)
    offline = traitlets.Bool(False).tag(sync=True)

    # Outputs.
    image_name = traitlets.Unicode("").tag(sync=True)
    image_size = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)  # idle | loading | busy | done | error
    error = traitlets.Unicode("").tag(sync=True)
    result_mmd = traitlets.Unicode("").tag(sync=True)
    result_tables = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    result_raw = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    result_meta = traitlets.Unicode("").tag(sync=True)
    history = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)

    # Only filled when keep_image=True: a preview data URL kept in the saved state.
    kept_image = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        image: Any = None,
        *,
        client: Any = None,
        formats: list[str] | tuple[str, ...] = ("text",),
        region: str | None = None,
        keep_image: bool = False,
        **options: Any,
    ) -> None:
        super().__init__()
        self._image: LoadedImage | None = None
        self._results: list[Any] = []
        self._options = dict(options)
        self._keep_image = bool(keep_image)
        self._pool: ClientPool | None = None
        self._last_error: BaseException | None = None
        self.formats = self._checked_formats(formats)
        if region is not None and not isinstance(client, Mapping):
            region = normalize_region(region)  # a wrong argument: say so at once
        try:
            self._pool = ClientPool(client, region=region)
        except ConfigurationError as exc:  # e.g. no credentials and no offline engine: show it
            self._fail(exc)
        except ValueError:
            raise  # a wrong argument: say so at once
        except Exception as exc:
            self._fail(exc)
        if self._pool is not None:
            self.regions = self._pool.regions
            self.region = self._pool.default_region
            self.offline = self._pool.offline
            self.engine_note = self._pool.note
        if image is not None:
            self.load(image)

    # -- Python API -------------------------------------------------------------------------

    @property
    def result(self) -> Any:
        """The latest ``OcrResult`` (None before the first successful OCR)."""
        return self._results[-1] if self._results else None

    @property
    def results(self) -> list[Any]:
        """Every ``OcrResult`` of this panel's session, oldest first."""
        return list(self._results)

    @property
    def client(self) -> Any:
        """The client used for the selected region."""
        if self._pool is None:
            raise RuntimeError(self.error or "The panel has no client.")
        return self._pool.get(self.region)

    def load(self, source: Any, *, name: str | None = None) -> None:
        """Load an image (path, http(s) URL, bytes, file object or PIL image) into the panel.

        Raises ``ImageError`` for an unreadable source (the panel shows the reason too).
        """
        self.status = "loading"
        try:
            loaded = read_image(source, name)
        except Exception as exc:
            self._fail(exc)
            raise
        self._set_image(loaded)

    def ocr(self) -> Any:
        """OCR the current crop (what the OCR button does) and return the ``OcrResult``.

        Errors are shown in the panel and raised.
        """
        result = self._run_ocr()
        if result is None:
            exc, self._last_error = self._last_error, None
            if exc is not None:
                raise exc
            raise RuntimeError(self.error)
        return result

    def tables(self) -> list[Any]:
        """The tables of the result shown in the panel, as pandas DataFrames (needs pandas).

        Empty before the first OCR; see ``OcrResult.tables()`` for where tables come from.
        """
        shown = self.shown_result
        return [] if shown is None else list(shown.tables())

    @property
    def shown_result(self) -> Any:
        """The ``OcrResult`` the panel shows (picked in the history), or None."""
        if 0 <= self.selected < len(self._results):
            return self._results[self.selected]
        return None

    def clear_crop(self) -> None:
        """Select the whole image again."""
        self.crop = []

    def close(self) -> None:
        """Close the widget and any client it made (not a client you passed in)."""
        if self._pool is not None:
            self._pool.close()
        super().close()

    def __repr__(self) -> str:
        size = "x".join(map(str, self.image_size)) or "no image"
        return (
            f"CropPanel(image={self.image_name or None!r}, size={size}, crop={self.crop}, "
            f"formats={self.formats}, region={self.region!r}, results={len(self._results)})"
        )

    # -- validation -------------------------------------------------------------------------

    @staticmethod
    def _checked_formats(formats: Any) -> list[str]:
        if isinstance(formats, str):
            formats = [f.strip() for f in formats.split(",") if f.strip()]
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"Unknown format(s) {unknown}; choose from {list(FORMATS)}.")
        return list(formats) or ["text"]

    @traitlets.validate("rotation")
    def _valid_rotation(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value % 90:
            raise traitlets.TraitError(f"rotation={value} must be a multiple of 90 degrees.")
        return value % 360

    @traitlets.observe("rotation")
    def _rotation_changed(self, change: dict[str, Any]) -> None:
        # A box drawn on the old orientation means nothing on the new one.
        self.crop = []

    def _crop_box(self) -> tuple[int, int, int, int] | None:
        """The crop as (x, y, w, h) in the (rotated) image, by the client's one crop rule
        (``clip_crop``): a box partly outside is clipped, one entirely outside is refused;
        None = the whole image."""
        if not self.crop:
            return None
        assert self._image is not None
        width, height = self._image.width, self._image.height
        if self.rotation in (90, 270):
            width, height = height, width
        box = clip_crop(self.crop, width, height, source=self._image.name)
        if box == (0, 0, width, height):
            return None
        return box

    # -- internals --------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self._last_error = exc
        self.error = describe_error(exc, self._pool.redact if self._pool is not None else str)
        self.status = "error"
        logger.info("panel error: %s", self.error)

    def _set_image(self, loaded: LoadedImage) -> None:
        self._image = loaded
        with self.hold_sync():
            self.rotation = 0
            self.crop = []
            self.image_name = loaded.name
            self.image_size = [loaded.width, loaded.height]
            self.error = ""
            self.status = "idle"
            # The result on screen belonged to the previous image (it stays in the history).
            self.selected = -1
            self.result_mmd = ""
            self.result_tables = []
            self.result_raw = []
            self.result_meta = ""
            if self._keep_image:
                encoded = base64.b64encode(loaded.preview).decode("ascii")
                self.kept_image = f"data:{loaded.preview_mime};base64,{encoded}"
        self._send_image()

    def _send_image(self) -> None:
        if self._image is None:
            return
        img = self._image
        header = {
            "type": "image",
            "name": img.name,
            "mime": img.preview_mime,
            "width": img.width,
            "height": img.height,
        }
        self.send(header, buffers=[img.preview])

    def _on_custom(self, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "ready":
            self._send_image()
        elif kind == "upload":
            if not buffers:
                self._fail(ValueError("The upload arrived without any bytes; try again."))
                return
            name = str(content.get("name") or "pasted image")
            with contextlib.suppress(Exception):  # already shown in the panel
                self.load(bytes(buffers[0]), name=name)
        elif kind == "load":
            source = str(content.get("source", "")).strip()
            if not source:
                self._fail(ValueError("Type a file path or an http(s) URL first."))
                return
            with contextlib.suppress(Exception):
                self.load(source)
        elif kind == "ocr":
            self._run_ocr()
        elif kind == "show":
            self._show(int(content.get("index", -1)))

    def _run_ocr(self) -> Any:
        # Always pass through "busy": the page re-enables its OCR button on the next status
        # change, even when the same error comes back twice.
        self.status = "busy"
        if self._image is None:
            self._fail(ValueError("Load an image first (upload, drop, paste, or a path/URL)."))
            return None
        if self._pool is None:
            self.status = "error"
            return None
        self.error = ""
        try:
            box = self._crop_box()
            client = self._pool.get(self.region)
            source: Any = self._image.data
            if self.rotation:
                source = rotated(self._image.data, self.rotation)
            options = {**self._options, "formats": list(self.formats)}
            result = client.text(source, crop=box, **options)
        except Exception as exc:
            self._fail(exc)
            return None
        self._results.append(result)
        index = len(self._results) - 1
        entry: dict[str, Any] = {
            "index": index,
            "name": self._image.name,
            "crop": list(box) if box else [],
            "rotation": self.rotation,
            "region": self.region,
            "formats": list(self.formats),
            "summary": _summary(result),
        }
        with self.hold_sync():
            self.history = [*self.history, entry]
            self._show(index)
            self.status = "done"
        return result

    def _show(self, index: int) -> None:
        if not 0 <= index < len(self._results):
            return
        result = self._results[index]
        entry = next((h for h in self.history if h.get("index") == index), {})
        with self.hold_sync():
            self.selected = index
            self.result_mmd = result_mmd(result) or "*(no text recognised)*"
            self.result_tables = table_summaries(result)
            self.result_raw = _raw_outputs(result)
            self.result_meta = _meta(result, entry)


def _meta(result: Any, entry: dict[str, Any]) -> str:
    """One line under the result: which snip, where it was read, how sure the engine was."""
    parts = [f"#{entry.get('index', 0) + 1} {entry.get('name', '')}".strip()]
    crop = entry.get("crop") or []
    parts.append(f"box {crop[2]}×{crop[3]} at ({crop[0]}, {crop[1]})" if crop else "whole image")
    if entry.get("rotation"):
        parts.append(f"rotated {entry['rotation']}°")
    if entry.get("region"):
        parts.append(f"region {entry['region']}")
    confidence = getattr(result, "confidence", None)
    if confidence is not None:
        parts.append(f"confidence {confidence:.2f}")
    request_id = getattr(result, "request_id", None)
    if request_id:
        parts.append(f"request {request_id}")
    return " · ".join(parts)


def _summary(result: Any) -> str:
    text = str(getattr(result, "text", "") or getattr(result, "latex_styled", "") or "")
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _raw_outputs(result: Any) -> list[dict[str, str]]:
    """The raw outputs next to the rendered view, each with its own copy button."""
    raw: list[dict[str, str]] = []
    text = getattr(result, "text", None)
    if text:
        raw.append({"key": "text", "label": FORMATS["text"], "value": str(text)})
    latex = getattr(result, "latex_styled", None)
    if latex:
        raw.append({"key": "latex_styled", "label": FORMATS["latex_styled"], "value": str(latex)})
    html = getattr(result, "html", None)
    if html:
        raw.append({"key": "html", "label": FORMATS["html"], "value": str(html)})
    data = getattr(result, "data", None)
    if data:
        raw.append({"key": "data", "label": "Data", "value": json.dumps(data, indent=2)})
    return raw
