"""LangChain document loader and blob parser backed by Mathpix OCR.

``MathpixLoader`` turns images (scans, photos of whiteboards, slides) and PDFs into LangChain
``Document`` objects: images go through ``v3/text``, PDFs through ``v3/pdf``. PDFs become one
``Document`` per file, or one per page with ``mode="page"`` (the page split comes from the
``lines.json`` page data Mathpix returns). ``MathpixBlobParser`` does the same for a ``Blob``,
so it plugs into ``GenericLoader`` and any other blob source.

Metadata carries what a RAG application needs to cite a chunk and to fetch it again:
``source``, ``page`` (1-based, PDFs in page mode), ``request_id`` (images) or ``pdf_id``
(PDFs), ``region``, ``confidence``, ``is_printed`` / ``is_handwritten`` and ``engine`` (the
``version`` string the API reports). Keys whose value is unknown are left out rather than set
to ``None``, because several vector stores reject ``None`` metadata.

Needs the ``langchain`` extra: ``pip install "mathpix_nb[langchain]"``.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args
from urllib.parse import urlparse

try:
    from langchain_core.document_loaders import BaseBlobParser, BaseLoader
    from langchain_core.documents import Document
    from langchain_core.documents.base import Blob
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mathpix_nb.langchain needs langchain-core: pip install 'mathpix_nb[langchain]'"
    ) from exc

from ._client import AsyncMathpix, Mathpix
from ._config import resolve_settings
from ._exceptions import (
    AuthenticationError,
    ConfigurationError,
    MathpixError,
    NotAllowedError,
    QuotaExceededError,
)
from ._journal import Journal
from ._models import to_markdown

__all__ = ["ErrorPolicy", "LoadMode", "MathpixBlobParser", "MathpixLoader", "OutputFormat"]

OutputFormat = Literal["mmd", "markdown", "text"]
"""``"mmd"``: Mathpix Markdown as the API returns it (math in ``\\( \\)`` / ``\\[ \\]``);
``"markdown"``: the same with ``$`` / ``$$`` math, as Jupyter and most Markdown renderers
expect; ``"text"``: markup and math delimiters removed (math stays as LaTeX source), for
embedders that dislike markup."""

LoadMode = Literal["single", "page"]
"""``"single"``: one Document per file; ``"page"``: one Document per PDF page."""

ErrorPolicy = Literal["raise", "skip", "document"]
"""What to do when one source fails: raise, skip it, or yield a Document with empty
``page_content`` and ``error`` / ``error_type`` / ``error_id`` in its metadata."""

SourceInput = str | os.PathLike | bytes | Blob
"""One source: a path, a directory, a glob pattern, an http(s) URL, raw bytes or a Blob."""

IMAGE_SUFFIXES = frozenset(
    [
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".bmp",
        ".dib",
        ".jp2",
        ".webp",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".tif",
        ".tiff",
    ]
)
DOCUMENT_SUFFIXES = frozenset(
    [".pdf", ".epub", ".docx", ".pptx", ".doc", ".odt", ".djvu", ".mobi", ".azw", ".azw3", ".wpd"]
)

# Errors that would fail every source the same way: skipping them would hide a broken setup.
_FATAL_ERRORS: tuple[type[BaseException], ...] = (
    ConfigurationError,
    NotAllowedError,
    AuthenticationError,
    QuotaExceededError,
)

_CLIENT_KWARGS = (
    "app_id",
    "app_key",
    "app_token",
    "token_url",
    "token_auth",
    "use_app_tokens",
    "region",
    "base_url",
    "region_urls",
    "timeout",
    "max_retries",
)


# --------------------------------------------------------------------------------------------
# Plain-text rendering of Mathpix Markdown
# --------------------------------------------------------------------------------------------

_MATH_DELIMS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|(?<!\\)\$")
_LATEX_WRAPPERS = re.compile(
    r"\\(?:title|author|section|subsection|subsubsection|textbf|textit|emph|underline)\*?\{([^{}]*)\}"
)
_ENVIRONMENT_MARKERS = re.compile(r"\\(?:begin|end)\{(?:abstract|center|itemize|enumerate)\}\n?")
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\([^)]*\)")
_HEADING = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITEM = re.compile(r"^\s*\\item\s*", re.MULTILINE)
_ESCAPES = re.compile(r"\\([$%&#_])")


def mmd_to_text(mmd: str) -> str:
    r"""Strip Mathpix Markdown down to plain text, keeping math as bare LaTeX.

    >>> mmd_to_text(r"# Title" "\n" r"Area is \( \pi r^2 \) and **bold**")
    'Title\nArea is  \\pi r^2  and bold'
    >>> mmd_to_text(r"\section*{Intro}" "\n" r"$$E=mc^2$$ see [docs](https://x.y)")
    'Intro\nE=mc^2 see docs'
    >>> mmd_to_text(r"It costs \$5 or 10\%")
    'It costs $5 or 10%'
    """
    text = _IMAGE_LINK.sub(r"\1", mmd)
    text = _LINK.sub(r"\1", text)
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _ENVIRONMENT_MARKERS.sub("", text)
    text = _ITEM.sub("- ", text)
    text = _HEADING.sub("", text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    text = _MATH_DELIMS.sub("", text)
    text = _ESCAPES.sub(r"\1", text)
    return text.strip()


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One thing to send: a local file, in-memory bytes or a URL."""

    source: str
    kind: Literal["image", "pdf"]
    path: Path | None = None
    data: bytes | None = None
    url: str | None = None
    blob_metadata: Mapping[str, Any] | None = None

    def payload(self) -> Any:
        """What the client's ``text()`` / ``pdf()`` accepts for this item."""
        if self.url is not None:
            return self.url
        if self.path is not None:
            return str(self.path)
        return self.data

    def content_bytes(self) -> bytes | None:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        return None


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _kind_from_suffix(name: str) -> Literal["image", "pdf"] | None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        return "pdf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return None


def _kind_from_bytes(data: bytes) -> Literal["image", "pdf"]:
    # %PDF, or a zip container (DOCX, PPTX, EPUB): both are v3/pdf's business.
    head = data[:1024].lstrip()
    return "pdf" if head.startswith((b"%PDF", b"PK\x03\x04")) else "image"


def _kind_from_mimetype(mimetype: str | None) -> Literal["image", "pdf"] | None:
    if not mimetype:
        return None
    if mimetype.startswith("image/"):
        return "image"
    if mimetype in ("application/pdf", "application/x-pdf") or mimetype.startswith(
        ("application/vnd.openxmlformats", "application/epub", "application/msword")
    ):
        return "pdf"
    return None


def _looks_like_glob(value: str) -> bool:
    return any(ch in value for ch in "*?[")


_HOW_TO = (
    "Pass an existing file, a directory, a glob pattern such as 'scans/*.png', "
    "an http(s) URL, bytes or a langchain Blob."
)


def _blob_item(blob: Blob) -> _Item:
    data = blob.as_bytes() if blob.data is not None else None
    path = Path(blob.path) if blob.path is not None and data is None else None
    if path is None and data is None:
        raise ValueError(f"Blob {blob!r} has neither data nor path. {_HOW_TO}")
    source = blob.source or (
        f"bytes:sha256={hashlib.sha256(data).hexdigest()[:12]}" if data else ""
    )
    kind = _kind_from_mimetype(blob.mimetype) or _kind_from_suffix(str(blob.path or source))
    if kind is None:
        kind = _kind_from_bytes(data if data is not None else _head(path))  # type: ignore[arg-type]
    return _Item(source=source, kind=kind, path=path, data=data, blob_metadata=blob.metadata)


def _head(path: Path | None) -> bytes:
    if path is None:
        return b""
    with path.open("rb") as fh:
        return fh.read(1024)


def _file_item(path: Path) -> _Item:
    kind = _kind_from_suffix(path.name) or _kind_from_bytes(_head(path))
    return _Item(source=str(path), kind=kind, path=path)


def _scan(root: Path) -> list[_Item]:
    """Images and documents under ``root``, sorted; hidden files and folders are skipped."""
    return [
        _file_item(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and _kind_from_suffix(p.name) is not None
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


def _expand(value: SourceInput) -> list[_Item]:
    """Turn one user-facing source into the items it names (directories and globs expand)."""
    if isinstance(value, Blob):
        return [_blob_item(value)]
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise ValueError(f"MathpixLoader got empty bytes. {_HOW_TO}")
        digest = hashlib.sha256(data).hexdigest()[:12]
        return [_Item(source=f"bytes:sha256={digest}", kind=_kind_from_bytes(data), data=data)]
    if isinstance(value, str) and _is_url(value):
        kind = _kind_from_suffix(urlparse(value).path) or "image"
        return [_Item(source=value, kind=kind, url=value)]
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"MathpixLoader cannot read a source of type {type(value).__name__}. {_HOW_TO}"
        )
    path = Path(os.fspath(value)).expanduser()
    if path.is_dir():
        items = _scan(path)
        if not items:
            raise ValueError(
                f"Directory {str(path)!r} holds no image or PDF files "
                f"(looked for {', '.join(sorted(IMAGE_SUFFIXES | DOCUMENT_SUFFIXES))})."
            )
        return items
    if path.is_file():
        return [_file_item(path)]
    if _looks_like_glob(str(value)):
        matches = [Path(p) for p in _glob.glob(str(path), recursive=True)]
        files = sorted(p for p in matches if p.is_file())
        if not files:
            raise ValueError(f"Glob pattern {str(value)!r} matched no files. {_HOW_TO}")
        return [_file_item(p) for p in files]
    raise FileNotFoundError(f"MathpixLoader: no such file or directory: {str(value)!r}. {_HOW_TO}")


def _normalise_sources(source: SourceInput | Iterable[SourceInput]) -> list[SourceInput]:
    if isinstance(source, (str, os.PathLike, bytes, Blob)):
        return [source]
    if isinstance(source, (bytearray, memoryview)):
        return [bytes(source)]
    if isinstance(source, Iterable):
        sources = list(source)
        if not sources:
            raise ValueError(f"MathpixLoader got an empty list of sources. {_HOW_TO}")
        return sources
    raise TypeError(
        f"MathpixLoader cannot read a source of type {type(source).__name__}. {_HOW_TO}"
    )


# --------------------------------------------------------------------------------------------
# Results -> Documents (pure)
# --------------------------------------------------------------------------------------------


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if v is not None}


def _render(text: str | None, output_format: OutputFormat) -> str:
    text = text or ""
    if output_format == "text":
        return mmd_to_text(text)
    if output_format == "markdown":
        return to_markdown(text)
    return text


def _page_stats(page: Mapping[str, Any]) -> dict[str, Any]:
    """Confidence and printed/handwritten flags of one lines.json page."""
    lines = [ln for ln in page.get("lines", []) if isinstance(ln, Mapping)]
    confidences = [float(ln["confidence"]) for ln in lines if ln.get("confidence") is not None]
    rates = [float(ln["confidence_rate"]) for ln in lines if ln.get("confidence_rate") is not None]
    return {
        "confidence": min(confidences) if confidences else None,
        "confidence_rate": sum(rates) / len(rates) if rates else None,
        "is_printed": any(bool(ln.get("is_printed")) for ln in lines) if lines else None,
        "is_handwritten": any(bool(ln.get("is_handwritten")) for ln in lines) if lines else None,
    }


def _combine_stats(pages: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(key: str, how: Callable[[list[Any]], Any]) -> Any:
        values = [p[key] for p in pages if p.get(key) is not None]
        return how(values) if values else None

    return {
        "confidence": pick("confidence", min),
        "confidence_rate": pick("confidence_rate", lambda v: sum(v) / len(v)),
        "is_printed": pick("is_printed", any),
        "is_handwritten": pick("is_handwritten", any),
    }


def _image_documents(item: _Item, result: Any, region: str, fmt: OutputFormat) -> list[Document]:
    raw = getattr(result, "raw", None) or {}
    meta = {
        **dict(item.blob_metadata or {}),
        "source": item.source,
        "kind": "image",
        "request_id": getattr(result, "request_id", None) or raw.get("request_id"),
        "region": region,
        "confidence": getattr(result, "confidence", None),
        "confidence_rate": getattr(result, "confidence_rate", None),
        "is_printed": getattr(result, "is_printed", None),
        "is_handwritten": getattr(result, "is_handwritten", None),
        "engine": raw.get("version"),
        "output_format": fmt,
    }
    return [Document(page_content=_render(result.text, fmt), metadata=_clean(meta))]


def _pdf_documents(
    item: _Item, result: Any, region: str, fmt: OutputFormat, mode: LoadMode
) -> list[Document]:
    lines = getattr(result, "lines", None) or {}
    line_pages = sorted(
        (p for p in lines.get("pages", []) if isinstance(p, Mapping)),
        key=lambda p: p.get("page", 0),
    )
    page_texts: list[str] = list(getattr(result, "pages", None) or [])
    stats = [_page_stats(p) for p in line_pages]
    numbers = [int(p.get("page", i + 1)) for i, p in enumerate(line_pages)]
    base = {
        **dict(item.blob_metadata or {}),
        "source": item.source,
        "kind": "pdf",
        "pdf_id": getattr(result, "pdf_id", None),
        "region": region,
        "engine": _pdf_engine(result),
        "output_format": fmt,
        "total_pages": len(page_texts) or len(line_pages) or getattr(result, "num_pages", None),
    }
    if mode == "page" and page_texts:
        docs = []
        for i, text in enumerate(page_texts):
            page_stats = stats[i] if i < len(stats) else {}
            page_no = numbers[i] if i < len(numbers) else i + 1
            meta = {**base, "page": page_no, **page_stats}
            docs.append(Document(page_content=_render(text, fmt), metadata=_clean(meta)))
        return docs
    meta = {**base, **_combine_stats(stats)}
    return [Document(page_content=_render(result.mmd, fmt), metadata=_clean(meta))]


def _pdf_engine(result: Any) -> str | None:
    """The engine ``version`` from the PDF status answer, when the API reports one."""
    raw = getattr(result, "raw", None)
    version = raw.get("version") if isinstance(raw, Mapping) else None
    return version if isinstance(version, str) else None


def _error_document(item: _Item, exc: BaseException, region: str | None) -> Document:
    meta = {
        **dict(item.blob_metadata or {}),
        "source": item.source,
        "kind": item.kind,
        "region": region,
        "error": str(exc),
        "error_type": type(exc).__name__,
        "error_id": getattr(exc, "error_id", None),
        "request_id": getattr(exc, "request_id", None),
    }
    return Document(page_content="", metadata=_clean(meta))


# --------------------------------------------------------------------------------------------
# The shared engine behind the loader and the parser
# --------------------------------------------------------------------------------------------


class _Engine:
    """Options, client construction and the per-item conversion shared by loader and parser."""

    def __init__(
        self,
        *,
        client: Mathpix | None,
        async_client: AsyncMathpix | None,
        client_kwargs: dict[str, Any],
        output_format: OutputFormat,
        mode: LoadMode,
        on_error: ErrorPolicy,
        options: Mapping[str, Any] | None,
        image_options: Mapping[str, Any] | None,
        pdf_options: Mapping[str, Any] | None,
        max_concurrency: int,
        cache: CacheOption,
    ) -> None:
        _check_choice("output_format", output_format, OutputFormat)
        _check_choice("mode", mode, LoadMode)
        _check_choice("on_error", on_error, ErrorPolicy)
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}.")
        self.client = client
        self.async_client = async_client
        self.client_kwargs = {k: v for k, v in client_kwargs.items() if v is not None}
        self.output_format: OutputFormat = output_format
        self.mode: LoadMode = mode
        self.on_error: ErrorPolicy = on_error
        self.image_options = {**(options or {}), **(image_options or {})}
        self.pdf_options = {**(options or {}), **(pdf_options or {})}
        self.max_concurrency = max_concurrency
        self.cache = cache
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()

    # -- configuration checks ----------------------------------------------------------------

    @property
    def uses_app_token(self) -> bool:
        for client in (self.client, self.async_client):
            if client is not None and getattr(client, "auth_mode", "keys") == "app_token":
                return True
        if self.client is None and self.async_client is None:
            return bool(
                self.client_kwargs.get("app_token")
                or self.client_kwargs.get("token_url")
                or self.client_kwargs.get("use_app_tokens")
            )
        return False

    def pdfs_refused(self) -> bool:
        """True when the credentials are app-token only: Mathpix takes PDFs with keys only."""
        for client in (self.client, self.async_client):
            if client is not None:
                settings = getattr(client, "settings", None)
                return settings is not None and not settings.has_keys
        try:
            settings = resolve_settings(**self.client_kwargs)
        except MathpixError:
            return False  # the client reports missing credentials itself when it is built
        return not settings.has_keys

    def preflight(self, items: Iterable[_Item]) -> None:
        """Refuse PDFs in app-token-only mode before any request is sent."""
        pdfs = [it.source for it in items if it.kind == "pdf"]
        if pdfs and self.pdfs_refused():
            shown = ", ".join(repr(s) for s in pdfs[:3]) + (" ..." if len(pdfs) > 3 else "")
            raise NotAllowedError(
                f"PDFs cannot be processed with an app token (Mathpix accepts app tokens on "
                f"v3/text only), and these sources are PDFs: {shown}. Use app_id/app_key for "
                f"PDFs, or load only images in app-token mode."
            )

    # -- clients -----------------------------------------------------------------------------

    def make_client(self) -> tuple[Mathpix, bool]:
        if self.client is not None:
            return self.client, False
        return Mathpix(**self.client_kwargs), True

    def make_async_client(self) -> tuple[AsyncMathpix, bool]:
        if self.async_client is not None:
            return self.async_client, False
        return AsyncMathpix(**self.client_kwargs), True

    # -- one item ----------------------------------------------------------------------------

    def pdf_outputs(self) -> tuple[str, ...]:
        # lines.json carries the page split and per-line confidence; always worth fetching.
        return ("mmd", "lines.json")

    def journal(self) -> Journal | None:
        with self._journal_lock:  # worker threads of alazy_load may race to open it
            if self._journal is None and self.cache is not False:
                self._journal = _open_journal(self.cache)
            return self._journal

    def close_journal(self) -> None:
        """Close a journal we opened (one the caller passed in stays open)."""
        if self._journal is not None and not isinstance(self.cache, Journal):
            self._journal.close()
        self._journal = None

    def cache_key(self, item: _Item, client: Any, region: str) -> str | None:
        """Content hash + options + region (+ how we render), or None when not cacheable.

        URLs are not cached: what a URL serves can change.
        """
        if self.cache is False or item.url is not None:
            return None
        content = item.content_bytes()
        if not content:
            return None
        opts = self.pdf_options if item.kind == "pdf" else self.image_options
        extra = {
            "surface": "langchain",
            "kind": item.kind,
            "mode": self.mode if item.kind == "pdf" else "single",
            "output_format": self.output_format,
            "base_url": str(getattr(client, "base_url", "") or ""),
        }
        return Journal.make_key(
            hashlib.sha256(content).hexdigest(), opts, region=region, extra=extra
        )

    def cached(self, item: _Item, key: str | None) -> list[Document] | None:
        journal = self.journal() if key is not None else None
        result = journal.lookup(key) if journal is not None and key is not None else None
        docs = _docs_from_json(result) if result is not None else None
        if docs is None:
            return None
        for doc in docs:  # the same content may come back under another name
            doc.metadata.update(dict(item.blob_metadata or {}))
            doc.metadata["source"] = item.source
        return docs

    def remember(self, item: _Item, key: str | None, docs: list[Document]) -> None:
        journal = self.journal() if key is not None else None
        if journal is not None and key is not None:
            journal.done(key, _docs_to_json(docs), source=item.source)

    def documents(self, item: _Item, result: Any, region: str) -> list[Document]:
        if item.kind == "pdf":
            return _pdf_documents(item, result, region, self.output_format, self.mode)
        return _image_documents(item, result, region, self.output_format)

    def convert(self, client: Mathpix, item: _Item) -> list[Document]:
        """Documents for one item via the sync client (or the cache), honouring on_error."""
        region = _region_of(client)
        try:
            key = self.cache_key(item, client, region)
            docs = self.cached(item, key)
            if docs is not None:
                return docs
            result: Any
            if item.kind == "pdf":
                result = client.pdf(item.payload(), outputs=self.pdf_outputs(), **self.pdf_options)
            else:
                result = client.text(item.payload(), **self.image_options)
        except _FATAL_ERRORS:
            raise
        except (MathpixError, OSError, ValueError) as exc:
            return self.handle_error(item, exc, region)
        docs = self.documents(item, result, region)
        self.remember(item, key, docs)
        return docs

    async def aconvert(self, client: AsyncMathpix, item: _Item) -> list[Document]:
        """The async twin of :meth:`convert`; only the two client calls differ."""
        region = _region_of(client)
        try:
            key = self.cache_key(item, client, region)
            docs = self.cached(item, key)
            if docs is not None:
                return docs
            result: Any
            if item.kind == "pdf":
                result = await client.pdf(
                    item.payload(), outputs=self.pdf_outputs(), **self.pdf_options
                )
            else:
                result = await client.text(item.payload(), **self.image_options)
        except _FATAL_ERRORS:
            raise
        except (MathpixError, OSError, ValueError) as exc:
            return self.handle_error(item, exc, region)
        docs = self.documents(item, result, region)
        self.remember(item, key, docs)
        return docs

    def handle_error(self, item: _Item, exc: BaseException, region: str) -> list[Document]:
        if self.on_error == "raise":
            raise exc
        if self.on_error == "skip":
            return []
        return [_error_document(item, exc, region)]

    def safe_repr(self) -> str:
        shown = {
            k: v
            for k, v in self.client_kwargs.items()
            if k in ("region", "base_url", "region_urls", "token_url")
        }
        auth = "app_token" if self.uses_app_token else "keys"
        parts = [f"{k}={v!r}" for k, v in shown.items()]
        parts += [
            f"auth={auth!r}",
            f"output_format={self.output_format!r}",
            f"mode={self.mode!r}",
            f"on_error={self.on_error!r}",
        ]
        return ", ".join(parts)


def _region_of(client: Any) -> str:
    return str(getattr(client, "region", "") or "") or "global"


def _check_choice(name: str, value: Any, alias: Any) -> None:
    allowed = get_args(alias)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


# --------------------------------------------------------------------------------------------
# Result cache: the bulk engine's SQLite journal, used through lookup()/done()
# --------------------------------------------------------------------------------------------

CacheOption = bool | str | os.PathLike | Journal
"""``True``: the shared journal in ``$MATHPIX_NB_HOME``; ``False``: off; a path or a
``Journal``: that journal."""


def _open_journal(cache: CacheOption) -> Journal | None:
    if cache is False or cache is None:
        return None
    if isinstance(cache, Journal):
        return cache
    if cache is True:
        return Journal()
    if isinstance(cache, (str, os.PathLike)):
        return Journal(cache)
    raise TypeError(f"cache must be True, False, a path or a Journal; got {type(cache).__name__}.")


def _docs_to_json(docs: list[Document]) -> dict[str, Any]:
    return {"documents": [{"page_content": d.page_content, "metadata": d.metadata} for d in docs]}


def _docs_from_json(result: Mapping[str, Any]) -> list[Document] | None:
    docs = result.get("documents")
    if not isinstance(docs, list):
        return None
    return [Document(page_content=d["page_content"], metadata=d["metadata"]) for d in docs]


# --------------------------------------------------------------------------------------------
# Public classes
# --------------------------------------------------------------------------------------------


class MathpixLoader(BaseLoader):
    """Load images and PDFs as LangChain Documents with Mathpix OCR.

    Images (PNG, JPEG, WebP, TIFF, ...) are read with ``v3/text``; PDFs (and the other
    document types ``v3/pdf`` accepts: EPUB, DOCX, PPTX, ...) with ``v3/pdf``.

    Setup:
        ``pip install "mathpix_nb[langchain]"`` and set ``MATHPIX_APP_ID`` /
        ``MATHPIX_APP_KEY`` (or pass ``app_id=`` / ``app_key=``, or an ``app_token=`` /
        ``token_url=`` for images only).

    Instantiate:
        .. code-block:: python

            from mathpix_nb.langchain import MathpixLoader

            loader = MathpixLoader(["scans/", "paper.pdf"], mode="page", region="eu")

    Lazy load:
        .. code-block:: python

            for doc in loader.lazy_load():
                print(doc.metadata["source"], doc.metadata.get("page"))

    Async load:
        .. code-block:: python

            docs = [doc async for doc in loader.alazy_load()]  # max_concurrency at a time

    Args:
        source: A path, directory (scanned recursively for images and PDFs), glob pattern,
            http(s) URL, ``bytes``, a ``Blob``, or a list of any of these.
        client: A ``Mathpix`` client to use (the caller keeps ownership). Default: one is
            built from the keyword arguments below for each ``lazy_load`` call.
        async_client: An ``AsyncMathpix`` client for ``alazy_load``. Without it (and with a
            ``client``), ``alazy_load`` runs the sync client in worker threads.
        app_id, app_key, app_token, token_url, token_auth, use_app_tokens, region, base_url,
            region_urls, timeout, max_retries: Passed to the client (see ``Mathpix``).
        output_format: ``"mmd"`` (Mathpix Markdown), ``"markdown"`` (``$`` math) or
            ``"text"`` (plain text).
        mode: ``"single"``: one Document per file; ``"page"``: one per PDF page.
        on_error: ``"raise"``, ``"skip"`` or ``"document"`` (an empty Document whose metadata
            has ``error``, ``error_type``, ``error_id``). Setup errors (credentials, quota,
            PDFs with an app token) always raise.
        options: API options for every request (e.g. ``{"math_inline_delimiters": ["$", "$"]}``).
        image_options: Extra options for ``v3/text`` only (e.g. ``{"include_line_data": True}``).
        pdf_options: Extra options for ``v3/pdf`` only (e.g. ``{"page_ranges": "1-3"}``).
        max_concurrency: Requests in flight at once in ``alazy_load``.
        cache: Reuse results for identical content, options and region.
    """

    def __init__(
        self,
        source: SourceInput | Iterable[SourceInput],
        *,
        client: Mathpix | None = None,
        async_client: AsyncMathpix | None = None,
        app_id: str | None = None,
        app_key: str | None = None,
        app_token: str | None = None,
        token_url: str | None = None,
        token_auth: str | Mapping[str, str] | None = None,
        use_app_tokens: bool | None = None,
        region: str | None = None,
        base_url: str | None = None,
        region_urls: Mapping[str, str] | None = None,
        timeout: Any = None,
        max_retries: int | None = None,
        output_format: OutputFormat = "mmd",
        mode: LoadMode = "single",
        on_error: ErrorPolicy = "raise",
        options: Mapping[str, Any] | None = None,
        image_options: Mapping[str, Any] | None = None,
        pdf_options: Mapping[str, Any] | None = None,
        max_concurrency: int = 4,
        cache: CacheOption = True,
    ) -> None:
        self._sources = _normalise_sources(source)
        client_kwargs = {
            "app_id": app_id,
            "app_key": app_key,
            "app_token": app_token,
            "token_url": token_url,
            "token_auth": token_auth,
            "use_app_tokens": use_app_tokens,
            "region": region,
            "base_url": base_url,
            "region_urls": region_urls,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        if (client is not None or async_client is not None) and any(
            v is not None for v in client_kwargs.values()
        ):
            given = sorted(k for k, v in client_kwargs.items() if v is not None)
            raise ConfigurationError(
                f"MathpixLoader got both a client and client settings ({', '.join(given)}); "
                "configure the client you pass, or drop client= and pass the settings."
            )
        self._engine = _Engine(
            client=client,
            async_client=async_client,
            client_kwargs=client_kwargs,
            output_format=output_format,
            mode=mode,
            on_error=on_error,
            options=options,
            image_options=image_options,
            pdf_options=pdf_options,
            max_concurrency=max_concurrency,
            cache=cache,
        )
        # Fail fast on what we can see without touching the disk: named PDFs in token mode.
        named = [s for s in self._sources if isinstance(s, (str, os.PathLike))]
        self._engine.preflight(
            _Item(source=str(s), kind="pdf")
            for s in named
            if _kind_from_suffix(urlparse(str(s)).path if _is_url(str(s)) else str(s)) == "pdf"
        )

    def __repr__(self) -> str:
        return f"MathpixLoader({len(self._sources)} source(s), {self._engine.safe_repr()})"

    def _items(self) -> list[_Item]:
        items = [item for src in self._sources for item in _expand(src)]
        self._engine.preflight(items)
        return items

    def lazy_load(self) -> Iterator[Document]:
        """Yield Documents one source at a time, in the order the sources were given."""
        items = self._items()
        client, owned = self._engine.make_client()
        try:
            for item in items:
                yield from self._engine.convert(client, item)
        finally:
            self._engine.close_journal()
            if owned:
                client.close()

    async def alazy_load(self) -> AsyncIterator[Document]:
        """Yield Documents in source order while up to ``max_concurrency`` requests run.

        Uses ``AsyncMathpix`` (or the given sync client in worker threads); never the
        executor default of ``BaseLoader``.
        """
        import anyio

        items = self._items()
        engine = self._engine
        limiter = anyio.CapacityLimiter(engine.max_concurrency)
        fatal: list[BaseException] = []  # once set, queued items are not sent
        sync_client = engine.client if engine.async_client is None else None
        aclient, owned = (None, False) if sync_client is not None else engine.make_async_client()

        async def run(item: _Item, results: list[Any], i: int) -> None:
            try:
                async with limiter:
                    if fatal:
                        raise fatal[0]
                    if sync_client is not None:
                        results[i] = await anyio.to_thread.run_sync(
                            engine.convert, sync_client, item
                        )
                    else:
                        results[i] = await engine.aconvert(aclient, item)  # type: ignore[arg-type]
            except Exception as exc:
                if isinstance(exc, _FATAL_ERRORS) and not fatal:
                    fatal.append(exc)
                results[i] = exc

        # Work in windows of a few times the concurrency: the limiter keeps max_concurrency
        # requests in flight, the window bounds memory, and no ``yield`` happens inside a task
        # group (a consumer that stops early must not leave a task group open).
        window = engine.max_concurrency * 4
        try:
            for first in range(0, len(items), window):
                chunk = items[first : first + window]
                results: list[Any] = [None] * len(chunk)
                async with anyio.create_task_group() as tg:
                    for i, item in enumerate(chunk):
                        tg.start_soon(run, item, results, i)
                for outcome in results:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    for doc in outcome:
                        yield doc
        finally:
            engine.close_journal()
            if owned and aclient is not None:
                await aclient.aclose()


class MathpixBlobParser(BaseBlobParser):
    """Parse image and PDF blobs with Mathpix OCR (for ``GenericLoader`` and other blob loaders).

    The blob's kind comes from its MIME type, then its file suffix, then its first bytes.
    Takes the same keyword arguments as ``MathpixLoader`` (no ``source``, no async options).

    .. code-block:: python

        from langchain_community.document_loaders.generic import GenericLoader
        from mathpix_nb.langchain import MathpixBlobParser

        loader = GenericLoader.from_filesystem("scans/", glob="**/*.png",
                                               parser=MathpixBlobParser(region="eu"))
    """

    def __init__(
        self,
        *,
        client: Mathpix | None = None,
        app_id: str | None = None,
        app_key: str | None = None,
        app_token: str | None = None,
        token_url: str | None = None,
        token_auth: str | Mapping[str, str] | None = None,
        use_app_tokens: bool | None = None,
        region: str | None = None,
        base_url: str | None = None,
        region_urls: Mapping[str, str] | None = None,
        timeout: Any = None,
        max_retries: int | None = None,
        output_format: OutputFormat = "mmd",
        mode: LoadMode = "single",
        on_error: ErrorPolicy = "raise",
        options: Mapping[str, Any] | None = None,
        image_options: Mapping[str, Any] | None = None,
        pdf_options: Mapping[str, Any] | None = None,
        cache: CacheOption = True,
    ) -> None:
        client_kwargs = {
            "app_id": app_id,
            "app_key": app_key,
            "app_token": app_token,
            "token_url": token_url,
            "token_auth": token_auth,
            "use_app_tokens": use_app_tokens,
            "region": region,
            "base_url": base_url,
            "region_urls": region_urls,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        if client is not None and any(v is not None for v in client_kwargs.values()):
            raise ConfigurationError(
                "MathpixBlobParser got both a client and client settings; configure the "
                "client you pass, or drop client= and pass the settings."
            )
        self._engine = _Engine(
            client=client,
            async_client=None,
            client_kwargs=client_kwargs,
            output_format=output_format,
            mode=mode,
            on_error=on_error,
            options=options,
            image_options=image_options,
            pdf_options=pdf_options,
            max_concurrency=1,
            cache=cache,
        )
        self._client: Mathpix | None = None

    def __repr__(self) -> str:
        return f"MathpixBlobParser({self._engine.safe_repr()})"

    def _get_client(self) -> Mathpix:
        # One client for the parser's lifetime so a GenericLoader run reuses connections.
        if self._client is None:
            self._client, _ = self._engine.make_client()
        return self._client

    def close(self) -> None:
        """Close the client the parser built (a client you passed in stays open)."""
        if self._client is not None and self._engine.client is None:
            self._client.close()
        self._client = None
        self._engine.close_journal()

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the Documents of one blob (one per file, or per PDF page in page mode)."""
        item = _blob_item(blob)
        self._engine.preflight([item])
        yield from self._engine.convert(self._get_client(), item)
