"""``%mathpix`` / ``%%mathpix``: OCR images from a notebook line or cell.

Load with ``%load_ext mathpix_nb``. The magic follows IPython's rules for values: the result
is returned (``r = %mathpix x.png`` keeps it and shows nothing), shown only as the value of a
cell's last line, and a trailing ``;`` silences it (the magic then returns None, as IPython's
own silenced magics do; the ``;`` never reaches the argument parser). Errors the user can fix
(a wrong path, a bad option, refused credentials...) show as one line with the fix; the full
traceback comes with ``%xmode verbose`` or ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .._exceptions import MathpixError
from ._clients import ClientPool
from .widget import FORMATS

__all__ = ["MathpixMagics", "OcrResults", "load_ipython_extension", "unload_ipython_extension"]


class OcrResults(list):  # type: ignore[type-arg]
    """The results of ``%%mathpix``, one per image, shown one after the other."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        super().__init__(result for _, result in items)
        self.sources = [source for source, _ in items]

    def _repr_markdown_(self) -> str:
        parts = []
        for source, result in zip(self.sources, self, strict=True):
            body = result._repr_markdown_() if hasattr(result, "_repr_markdown_") else str(result)
            parts.append(f"**{source}**\n\n{body}")
        return "\n\n---\n\n".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """One view of every result (each under its source), with a Markdown fallback."""
        from ._display import WIDGET_MIME, _in_kernel, _missing_note, _widget_entry

        bundle: dict[str, Any] = {"text/markdown": self._repr_markdown_(), "text/plain": repr(self)}
        if not _in_kernel():
            return bundle
        from . import _assets

        if _assets.find_renderer() is None:
            bundle["text/markdown"] += _missing_note()
            return bundle
        from ._view import ResultView

        bundle[WIDGET_MIME] = _widget_entry(ResultView(list(self), titles=self.sources))
        return bundle


def _parse_crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(
            f"--crop {text!r} must be four whole numbers x,y,w,h (pixels), e.g. --crop 10,20,300,80"
        ) from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--crop {text!r}: width and height must be > 0, e.g. --crop 10,20,300,80")
    # x / y may be negative: a box partly outside the image is clipped (the core's one rule)
    return (x, y, w, h)


def _parse_formats(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    formats = [f.strip() for value in values for f in value.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"--formats: unknown {unknown}; choose from {', '.join(FORMATS)}.")
    return formats


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as IPython's one-line UsageError (never exits)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"%mathpix: {message}. See %mathpix? for the options.")


def _parser() -> _Parser:
    p = _Parser(prog="%mathpix", add_help=False)
    p.add_argument("source", nargs="?", help="image path or http(s) URL; omit to open the panel")
    p.add_argument(
        "-f",
        "--formats",
        action="append",
        help=f"output formats, comma separated: {', '.join(FORMATS)} (default: text)",
    )
    p.add_argument("-r", "--region", help="Mathpix region: global or eu (data stays in the EU)")
    p.add_argument("-c", "--crop", help="only this box: x,y,w,h in pixels of the upright image")
    p.add_argument(
        "--ink", action="store_true", help="open the ink pad: write by hand, read it live"
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument(
        "--client",
        metavar="NAME",
        help="a Mathpix client variable to use (default: credentials from MATHPIX_APP_ID / "
        "MATHPIX_APP_KEY, else a local offline engine)",
    )
    return p


_PARSER = _parser()


@magics_class
class MathpixMagics(Magics):
    """The ``%mathpix`` line magic and ``%%mathpix`` cell magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._pool: ClientPool | None = None

    def _named_client(self, name: str) -> Any:
        namespace: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        try:
            client = eval(name, namespace)  # the user's own namespace
        except Exception:
            raise ValueError(
                f"--client {name!r}: no such variable in the notebook; create it first, "
                "e.g. client = Mathpix(...)."
            ) from None
        return client

    def _client(self, name: str | None, region: str | None) -> Any:
        if name:
            return ClientPool(self._named_client(name), region=region).get(region)
        if self._pool is None:
            self._pool = ClientPool()
        return self._pool.get(region)

    def _verbose(self) -> bool:
        """``%xmode verbose``: the user asked for full tracebacks."""
        tb = getattr(self.shell, "InteractiveTB", None)
        return str(getattr(tb, "mode", "")).lower() == "verbose"

    @line_cell_magic
    def mathpix(self, line: str, cell: str | None = None) -> Any:
        """OCR an image with Mathpix and show the result.

        Examples::

            %mathpix formula.png
            %mathpix https://example.com/page.jpg --formats text,latex_styled --region eu
            r = %mathpix scan.jpg --crop 40,120,600,90    # r is an OcrResult
            %mathpix                                       # open the crop panel
            %mathpix --ink                                 # open the ink pad (handwriting)

            %%mathpix --formats text
            page1.png
            page2.png

        The line form returns an ``OcrResult`` (``.text``, ``.latex_styled``, ``.markdown()``,
        ``.tables()``); the cell form OCRs every non-empty line (``#`` starts a comment) and
        returns a list. As with any IPython value, the result shows when the magic is the
        last line of the cell and not assigned; a trailing ``;`` silences it. Errors show as
        one line with the fix; ``--debug`` (or ``%xmode verbose``) shows the traceback.
        Without credentials, a local offline engine is used and its results are rougher.
        """
        line, silenced = _strip_semicolon(line)
        if cell is not None:
            cell, cell_silenced = _strip_semicolon(cell)
            silenced = silenced or cell_silenced
        debug = bool(re.search(r"(^|\s)--debug(\s|$)", line)) or self._verbose()
        try:
            value = self._run(line, cell)
        except UsageError:
            raise
        except (MathpixError, ValueError, OSError) as exc:
            if debug:
                raise
            _one_line(exc)
            raise
        return None if silenced else value

    def _run(self, line: str, cell: str | None) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%mathpix: {exc} (check the quotes)") from None
        args = _PARSER.parse_args(words)
        formats = _parse_formats(args.formats)
        crop = _parse_crop(args.crop) if args.crop else None
        if args.ink:
            if cell is not None or args.source or crop or formats:
                raise UsageError(
                    "%mathpix --ink opens the ink pad; it takes only --region/--client."
                )
            from ._ink import InkPad

            given = self._named_client(args.client) if args.client else None
            return InkPad(client=given, region=args.region)
        if args.source is not None and not args.source.strip():
            raise ValueError(
                f"%mathpix got an empty image path {args.source!r}; it is never read as the "
                "working directory. Fix: give an image path or http(s) URL, or omit it to open "
                "the crop panel."
            )
        if cell is None and not args.source:
            from .widget import CropPanel

            given = self._named_client(args.client) if args.client else None
            return CropPanel(client=given, region=args.region, formats=formats or ("text",))
        client = self._client(args.client, args.region)
        options: dict[str, Any] = {}
        if formats:
            options["formats"] = formats

        def ocr(source: str) -> Any:
            # the core's one crop rule: upright pixels, also for URLs (it downloads them)
            return client.text(_unquote(source), crop=crop, **options)

        if cell is not None:
            sources = [s.strip() for s in cell.splitlines()]
            sources = [s for s in sources if s and not s.startswith("#")]
            if args.source:
                sources.insert(0, args.source)
            if not sources:
                raise ValueError("%%mathpix: list one image path or URL per line in the cell.")
            return OcrResults([(s, ocr(s)) for s in sources])
        return ocr(args.source)


# %mathpix? shows the options too (as IPython's magic_arguments would add them)
MathpixMagics.mathpix.__doc__ = f"{MathpixMagics.mathpix.__doc__ or ''}\n{_PARSER.format_help()}"


def _strip_semicolon(text: str) -> tuple[str, bool]:
    """``text`` without a trailing ``;`` (IPython's "silence the value"), and whether it had one."""
    stripped = text.rstrip()
    if stripped.endswith(";"):
        return stripped[:-1], True
    return text, False


def _one_line(exc: BaseException) -> None:
    """Make IPython show ``exc`` as one line (its type and message, which names the fix).

    IPython prints ``_render_traceback_()`` instead of a traceback when an exception has one;
    the exception itself is unchanged (same type, catchable as before).
    """
    text = f"{type(exc).__name__}: {exc}  (traceback: %mathpix ... --debug, or %xmode verbose)"

    def render() -> list[str]:
        return [text]

    with contextlib.suppress(AttributeError, TypeError):  # a type without a __dict__
        exc._render_traceback_ = render  # type: ignore[attr-defined]


def _unquote(source: str) -> str:
    source = source.strip()
    if len(source) >= 2 and source[0] == source[-1] and source[0] in "'\"":
        return shlex.split(source)[0]
    return source


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext mathpix_nb``)."""
    ipython.register_magics(MathpixMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (``%unload_ext mathpix_nb``)."""
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("mathpix", None)
    manager.registry.pop("MathpixMagics", None)
