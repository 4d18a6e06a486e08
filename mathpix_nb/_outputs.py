"""``OcrResult`` / ``PdfResult`` as documents: ``result.to_docx(path)``, ``.to_pdf``, ...

A result converts through a client (Mathpix's ``v3/converter``, or the PDF's own outputs):

* ``client=`` names it explicitly (a ``Mathpix`` for ``to_*``, an ``AsyncMathpix`` for
  ``await ato_*``);
* otherwise the client that made the result is used. The result holds it by weak reference
  only: the reference is never pickled, copied or shown, so results stay picklable and hold
  no secret. After unpickling, or once that client is closed or gone, pass ``client=``.

Nothing here imports the flows at module level (``_models`` imports this module, and the
flows import ``_models``).
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncMathpix, Mathpix
    from ._options import ConversionOptions

__all__ = ["ConvertibleResult", "bind_client", "write_atomically"]

_REF = "_mathpix_client_ref"


def bind_client(value: Any, client: Any) -> Any:
    """Remember (weakly) which client made ``value`` if it is a convertible result."""
    if isinstance(value, ConvertibleResult):
        object.__setattr__(value, _REF, weakref.ref(client))
    children = getattr(value, "_convertible_children", None)  # e.g. a batch's results
    if callable(children):
        for child in children():
            bind_client(child, client)
    return value


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so a failure
    never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class ConvertibleResult:
    """Mixin of ``OcrResult`` and ``PdfResult``: write the result as docx, pdf, tex, ...

    Each ``to_<format>(path)`` returns the ``Path`` written; a directory as ``path`` gets a
    file named after the result (its ``request_id`` or ``pdf_id``). ``to_bytes(fmt)`` returns
    the bytes. The ``ato_*`` twins are for ``AsyncMathpix``.
    """

    __slots__ = ()

    # -- plumbing ----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop(_REF, None)  # a client is never pickled or copied with a result
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _client(self, client: Any, *, want_async: bool) -> Any:
        from ._client import AsyncMathpix, Mathpix

        kind: type = AsyncMathpix if want_async else Mathpix
        use = (
            "the ato_* methods (await result.ato_docx(path))"
            if want_async
            else "the to_* methods (result.to_docx(path))"
        )
        if client is None:
            ref = self.__dict__.get(_REF)
            client = ref() if ref is not None else None
            if client is None:
                raise ConfigurationError(
                    f"{type(self).__name__} does not know a client to convert with (it was "
                    "unpickled, built by hand, or its client is gone). Fix: pass client=, "
                    f"e.g. result.{'ato' if want_async else 'to'}_docx(path, client=client)."
                )
            if not isinstance(client, kind):
                fix = (
                    "use the to_* methods (result.to_docx(path))"
                    if want_async
                    else "use the ato_* methods (await result.ato_docx(path))"
                )
                raise ConfigurationError(
                    f"This result was made by {type(client).__name__}: {fix}, or pass "
                    f"client={kind.__name__}(...)."
                )
        elif not isinstance(client, kind):
            raise ConfigurationError(
                f"client= must be {kind.__name__} for {use}, got {type(client).__name__}."
            )
        http = getattr(client, "_http", None)
        if http is not None and getattr(http, "is_closed", False):
            raise ConfigurationError(
                f"The {type(client).__name__} to convert with is closed. Fix: pass an open "
                "client with client=."
            )
        return client

    def _stem(self) -> str:
        for name in ("request_id", "pdf_id"):
            value = getattr(self, name, None)
            if value:
                return str(value)
        return "result"

    def _target(self, path: str | os.PathLike[str], fmt: str) -> Path:
        target = Path(os.fspath(path)).expanduser()
        if target.is_dir():
            target = target / f"{self._stem()}.{fmt}"
        return target

    def _flow(self, client: Any, fmt: str, conversion_options: Any, timeout: float | None) -> Any:
        from ._conversions import Converter

        return Converter(client._core).result_output(
            self, fmt, conversion_options=conversion_options, timeout=timeout
        )

    # -- generic -------------------------------------------------------------------------------
    def to_bytes(
        self,
        fmt: str,
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """This result as ``fmt`` (``docx``, ``pdf``, ``latex.pdf``, ``tex.zip``, ``html``,
        ``md``, ``pptx``, ``xlsx``, ``md.zip``, ``mmd.zip``, ``html.zip``)."""
        driver = self._client(client, want_async=False)
        data: bytes = driver._run(self._flow(driver, fmt, conversion_options, timeout))
        return data

    async def ato_bytes(
        self,
        fmt: str,
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """:meth:`to_bytes` with an ``AsyncMathpix``."""
        driver = self._client(client, want_async=True)
        data: bytes = await driver._run(self._flow(driver, fmt, conversion_options, timeout))
        return data

    def to_file(
        self,
        fmt: str,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
    ) -> Path:
        """Write this result as ``fmt`` to ``path`` (a file, or a folder); the path written."""
        target = self._target(path, fmt)
        data = self.to_bytes(
            fmt, client=client, conversion_options=conversion_options, timeout=timeout
        )
        return write_atomically(target, data)

    async def ato_file(
        self,
        fmt: str,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
        timeout: float | None = None,
    ) -> Path:
        """:meth:`to_file` with an ``AsyncMathpix``."""
        target = self._target(path, fmt)
        data = await self.ato_bytes(
            fmt, client=client, conversion_options=conversion_options, timeout=timeout
        )
        return write_atomically(target, data)

    # -- one per common format -------------------------------------------------------------
    def to_docx(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """Word document (math as editable equations)."""
        return self.to_file("docx", path, client=client, conversion_options=conversion_options)

    def to_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """PDF rendered from HTML (``to_latex_pdf`` for a LaTeX-typeset one)."""
        return self.to_file("pdf", path, client=client, conversion_options=conversion_options)

    def to_latex_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """PDF typeset with LaTeX (format ``latex.pdf``)."""
        return self.to_file("latex.pdf", path, client=client, conversion_options=conversion_options)

    def to_tex(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """LaTeX project as a zip (format ``tex.zip``: the .tex file and its images)."""
        return self.to_file("tex.zip", path, client=client, conversion_options=conversion_options)

    def to_html(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """Standalone HTML."""
        return self.to_file("html", path, client=client, conversion_options=conversion_options)

    def to_md(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """Plain Markdown."""
        return self.to_file("md", path, client=client, conversion_options=conversion_options)

    def to_pptx(
        self,
        path: str | os.PathLike[str],
        *,
        client: Mathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        """PowerPoint slides."""
        return self.to_file("pptx", path, client=client, conversion_options=conversion_options)

    def to_xlsx(self, path: str | os.PathLike[str], *, client: Mathpix | None = None) -> Path:
        """Excel workbook of the tables."""
        return self.to_file("xlsx", path, client=client)

    async def ato_docx(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "docx", path, client=client, conversion_options=conversion_options
        )

    async def ato_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "pdf", path, client=client, conversion_options=conversion_options
        )

    async def ato_latex_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "latex.pdf", path, client=client, conversion_options=conversion_options
        )

    async def ato_tex(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "tex.zip", path, client=client, conversion_options=conversion_options
        )

    async def ato_html(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "html", path, client=client, conversion_options=conversion_options
        )

    async def ato_md(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file("md", path, client=client, conversion_options=conversion_options)

    async def ato_pptx(
        self,
        path: str | os.PathLike[str],
        *,
        client: AsyncMathpix | None = None,
        conversion_options: ConversionOptions | None = None,
    ) -> Path:
        return await self.ato_file(
            "pptx", path, client=client, conversion_options=conversion_options
        )

    async def ato_xlsx(
        self, path: str | os.PathLike[str], *, client: AsyncMathpix | None = None
    ) -> Path:
        return await self.ato_file("xlsx", path, client=client)
