"""Sources of the RAG loaders: what a user may pass, and the items it names.

A source is a path, a directory (scanned, bounded by ``max_files``), a glob pattern, an
http(s) URL, a ``data:`` URI, bytes, or an object a surface converts (a LangChain ``Blob``).
Each becomes :class:`Item`\\ s. A source that cannot be read (missing, a FIFO or device, an
empty directory, a bad ``data:`` URI) becomes an item carrying its error, so one bad source
in a list is one error document (or skipped) while the others load; ``on_error="raise"``
raises it. Inputs that can never be meant (an empty string, a dict) are refused at once.
"""

from __future__ import annotations

import base64
import binascii
import glob as _glob
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote_to_bytes, urlparse

from .._exceptions import ImageError

__all__ = [
    "DEFAULT_MAX_FILES",
    "DOCUMENT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Item",
    "Kind",
    "SourceError",
    "expand",
    "item_from_parts",
    "normalise_sources",
]

Kind = Literal["image", "pdf"]

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
DEFAULT_MAX_FILES = 10_000
"""Most image/PDF files one directory or glob source may name (``max_files=`` raises it)."""

HOW_TO = (
    "Pass an existing file, a directory, a glob pattern such as 'scans/*.png', an http(s) URL, "
    "a data: URI or bytes (in LangChain also a Blob)."
)


class SourceError(ImageError, FileNotFoundError):
    """A source names nothing readable (missing path, empty directory, glob without matches).

    An ``ImageError`` (so ``on_error`` handles it like any unreadable input) and a
    ``FileNotFoundError`` (what code written for the 0.1 loader catches)."""


@dataclass(frozen=True)
class Item:
    """One thing to send: a local file, in-memory bytes or a URL (or why it cannot be sent)."""

    source: str
    kind: Kind
    path: Path | None = None
    data: bytes | None = None
    url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    _digest: list[str] = field(default_factory=list, compare=False, repr=False)

    def payload(self) -> Any:
        """What the client's ``text()`` / ``pdf()`` / ``files_upload()`` accepts."""
        if self.url is not None:
            return self.url
        if self.path is not None:
            return str(self.path)
        return self.data

    def content_sha256(self) -> str | None:
        """sha256 of the bytes (a file is hashed in 1 MB blocks, never read whole; once per
        item), or None for a URL."""
        if self._digest:
            return self._digest[0]
        if self.data is not None:
            self._digest.append(hashlib.sha256(self.data).hexdigest())
        elif self.path is not None:
            digest = hashlib.sha256()
            with _open_regular(self.path) as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            self._digest.append(digest.hexdigest())
        return self._digest[0] if self._digest else None

    @property
    def name(self) -> str:
        """A file name for uploads."""
        if self.path is not None:
            return self.path.name
        suffix = ".pdf" if self.kind == "pdf" else ".png"
        return f"document{suffix}"


def _open_regular(path: Path) -> Any:
    """Open a regular file for reading; FIFOs, devices and sockets are refused (no hang)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(_special_message(path, mode), source=str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _special_message(path: Path | str, mode: int) -> str:
    what = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return (
        f"{str(path)!r} is {what}, not a regular file: it is not read (it could block or "
        "never end). Fix: copy the data into a file and pass that."
    )


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def kind_from_suffix(name: str) -> Kind | None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        return "pdf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return None


def kind_from_bytes(data: bytes) -> Kind:
    # %PDF, or a zip container (DOCX, PPTX, EPUB): both are v3/pdf's business.
    head = data[:1024].lstrip()
    return "pdf" if head.startswith((b"%PDF", b"PK\x03\x04")) else "image"


def kind_from_mimetype(mimetype: str | None) -> Kind | None:
    if not mimetype:
        return None
    mimetype = mimetype.lower()
    if mimetype.startswith("image/"):
        return "image"
    if mimetype in ("application/pdf", "application/x-pdf") or mimetype.startswith(
        ("application/vnd.openxmlformats", "application/epub", "application/msword")
    ):
        return "pdf"
    return None


def _bytes_source(data: bytes) -> str:
    return f"bytes:sha256={hashlib.sha256(data).hexdigest()[:12]}"


def _head(path: Path) -> bytes:
    with _open_regular(path) as fh:
        head: bytes = fh.read(1024)
        return head


def _file_item(path: Path, metadata: Mapping[str, Any] | None = None) -> Item:
    try:
        kind = kind_from_suffix(path.name) or kind_from_bytes(_head(path))
    except (OSError, ImageError) as exc:
        return Item(str(path), kind_from_suffix(path.name) or "image", path=path, error=exc)
    return Item(str(path), kind, path=path, metadata=dict(metadata or {}))


def item_from_parts(
    *,
    data: bytes | None,
    path: str | os.PathLike[str] | None,
    mimetype: str | None,
    source: str | None,
    metadata: Mapping[str, Any] | None,
) -> Item:
    """An item from a blob's parts (bytes or a path, MIME type, source name, metadata)."""
    if data is None and path is None:
        raise ValueError(f"A blob has neither data nor path. {HOW_TO}")
    file = Path(os.fspath(path)) if path is not None else None
    name = source or (str(file) if file is not None else _bytes_source(data or b""))
    kind = kind_from_mimetype(mimetype) or kind_from_suffix(str(file or name))
    if data is not None:
        return Item(
            name,
            kind or kind_from_bytes(data),
            data=data,
            metadata=dict(metadata or {}),
        )
    assert file is not None
    item = _file_item(file, metadata)
    return Item(name, kind or item.kind, path=file, metadata=item.metadata, error=item.error)


def _data_uri_item(uri: str) -> Item:
    """A ``data:`` URI decoded to bytes (so it is cached like bytes); images and PDFs."""
    header, sep, payload = uri.partition(",")
    mimetype = header[5:].split(";")[0].strip() or "text/plain"
    kind = kind_from_mimetype(mimetype)
    label = f"data:{mimetype}"
    try:
        if not sep:
            raise ValueError("no comma")
        data = (
            base64.b64decode(payload, validate=True)
            if header.endswith(";base64")
            else unquote_to_bytes(payload)
        )
    except (ValueError, binascii.Error):
        error = ImageError(
            f"{label} URI is not valid base64 data. Fix: pass 'data:image/png;base64,<base64>'.",
            source=label,
        )
        return Item(label, kind or "image", error=error)
    if not data:
        error = ImageError(f"{label} URI holds no data.", source=label)
        return Item(label, kind or "image", error=error)
    source = f"{label};sha256={hashlib.sha256(data).hexdigest()[:12]}"
    return Item(source, kind or kind_from_bytes(data), data=data)


def _scan(root: Path, max_files: int) -> Iterator[Item]:
    """Images and documents under ``root``, sorted; hidden files and folders are skipped,
    symlinked folders are not followed, at most ``max_files`` (then an error)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or kind_from_suffix(name) is None:
                continue
            found.append(Path(folder) / name)
            if len(found) > max_files:
                raise ValueError(
                    f"Directory {str(root)!r} holds more than {max_files:,} image/PDF files; "
                    "nothing was sent. Fix: pass max_files= with a higher bound, or a narrower "
                    "directory or glob pattern."
                )
    for path in sorted(found):
        yield _path_item(path)


def _path_item(path: Path) -> Item:
    """A named path: a regular file, or an item with the reason it cannot be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        why = "a broken symlink (its target is gone)" if path.is_symlink() else "missing"
        error: Exception = SourceError(
            f"{str(path)!r} is {why}. Fix: point it at an existing file. {HOW_TO}",
            source=str(path),
        )
        return Item(str(path), kind_from_suffix(path.name) or "image", path=path, error=error)
    except OSError as exc:
        return Item(str(path), kind_from_suffix(path.name) or "image", path=path, error=exc)
    if not stat.S_ISREG(mode):
        error = ImageError(_special_message(path, mode), source=str(path))
        return Item(str(path), kind_from_suffix(path.name) or "image", path=path, error=error)
    return _file_item(path)


def _glob_items(pattern: str, max_files: int) -> list[Item]:
    matches: list[Path] = []
    for name in _glob.iglob(pattern, recursive=True):
        path = Path(name)
        if path.is_dir():
            continue
        matches.append(path)
        if len(matches) > max_files:
            raise ValueError(
                f"Glob pattern {pattern!r} matches more than {max_files:,} files; nothing was "
                "sent. Fix: pass max_files= with a higher bound, or a narrower pattern."
            )
    return [_path_item(p) for p in sorted(matches)]


def expand(
    value: Any,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    convert: Callable[[Any], Item | None] | None = None,
) -> list[Item]:
    """The items one source names (directories and globs expand; errors become items).

    ``convert`` turns a surface's own source objects (a LangChain ``Blob``) into an item.
    Raises only for a source that is wrong whatever the files say (too many files).
    """
    if convert is not None:
        converted = convert(value)
        if converted is not None:
            return [converted]
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data:
            error = ImageError(f"Got empty bytes as a source. {HOW_TO}", source="bytes")
            return [Item("bytes:empty", "image", error=error)]
        return [Item(_bytes_source(data), kind_from_bytes(data), data=data)]
    if isinstance(value, str) and is_url(value.strip()):
        url = value.strip()
        kind = kind_from_suffix(urlparse(url).path) or "image"
        return [Item(url, kind, url=url)]
    if isinstance(value, str) and value.lstrip()[:5].lower() == "data:":
        return [_data_uri_item(value.strip())]
    path = Path(os.fspath(value)).expanduser()
    if path.is_dir():
        items = list(_scan(path, max_files))
        if not items:
            error = SourceError(
                f"Directory {str(path)!r} holds no image or PDF files (looked for "
                f"{', '.join(sorted(IMAGE_SUFFIXES | DOCUMENT_SUFFIXES))}).",
                source=str(path),
            )
            return [Item(str(path), "image", path=path, error=error)]
        return items
    if path.exists() or path.is_symlink():
        return [_path_item(path)]  # also a literal name with glob characters: 'scan[1].png'
    text = str(value)
    if any(ch in text for ch in "*?["):
        items = _glob_items(str(path), max_files)
        if not items:
            error = SourceError(f"Glob pattern {text!r} matched no files. {HOW_TO}", source=text)
            return [Item(text, kind_from_suffix(text) or "image", error=error)]
        return items
    error = SourceError(f"No such file or directory: {text!r}. {HOW_TO}", source=text)
    return [Item(text, kind_from_suffix(text) or "image", path=path, error=error)]


def _check_one(value: Any, what: str, accepts: tuple[type, ...]) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(
                f"{what} got an empty source string {value!r}. It is never read as the working "
                "directory (an unset config value would OCR every file under it). Fix: pass a "
                "path, URL or pattern; for the current directory pass '.'."
            )
        return value
    if isinstance(value, (bytes, os.PathLike, *accepts)):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping):
        raise TypeError(
            f"{what} got a dict as a source ({sorted(map(str, value))[:4]!r}...); a dict is "
            "not a list of paths. Fix: pass its values (list(d.values())) or a list of paths."
        )
    raise TypeError(f"{what} cannot read a source of type {type(value).__name__}. {HOW_TO}")


def normalise_sources(source: Any, *, what: str, accepts: tuple[type, ...] = ()) -> list[Any]:
    """The list of sources in ``source`` (one or an iterable), refusing what can never be
    meant: an empty string (never the working directory), a dict, an empty list."""
    if isinstance(source, (str, bytes, bytearray, memoryview, os.PathLike, Mapping, *accepts)):
        return [_check_one(source, what, accepts)]
    if isinstance(source, Iterable):
        sources = [_check_one(s, what, accepts) for s in source]
        if not sources:
            raise ValueError(f"{what} got an empty list of sources. {HOW_TO}")
        return sources
    raise TypeError(f"{what} cannot read a source of type {type(source).__name__}. {HOW_TO}")
