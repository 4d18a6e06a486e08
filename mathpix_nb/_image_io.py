"""Bounded reading of local inputs: paths, bytes and binary file objects.

Only regular files are read, and never more than a cap: a FIFO, a device such as
``/dev/zero``, a socket or a directory is refused *before* any read (``os.stat`` +
``S_ISREG``, then ``fstat`` of the opened descriptor, opened with ``O_NONBLOCK`` so that even a
FIFO swapped in between cannot block). Every problem is an ``ImageError`` naming the input and
the fix. The PDF reader of the client core uses the same function (``read_file``).
"""

from __future__ import annotations

import io
import os
import re
import stat
from typing import Any

from ._exceptions import ImageError

__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAX_DOCUMENT_BYTES", "read_file", "read_input"]

#: Default cap for one image file (``ImagePrep.max_file_bytes``).
DEFAULT_MAX_FILE_BYTES = 250_000_000
#: Cap for documents sent to ``v3/pdf`` (Mathpix accepts up to 1 GB).
MAX_DOCUMENT_BYTES = 1_000_000_000
_CHUNK = 1 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _too_big(source: str, size: str, max_bytes: int, what: str, knob: str) -> ImageError:
    return ImageError(
        f"{what.capitalize()} {source} is larger than the {_mb(max_bytes)} limit ({size}). "
        f"Fix: shrink or split it first, or raise {knob} if you trust the file.",
        source=source,
    )


def _not_found(source: str, path: str, what: str) -> ImageError:
    fix = f"check the path (relative paths are resolved from {os.getcwd()})"
    if _SCHEME.match(path):
        fix = "only http(s):// URLs and data: URIs are sent as URLs; download other URLs first"
    return ImageError(f"{what.capitalize()} file not found: {source}. Fix: {fix}.", source=source)


def read_file(
    path: str | os.PathLike[str] | os.PathLike[bytes] | bytes,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    what: str = "image",
    knob: str = "ImagePrep(max_file_bytes=...)",
) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` of them, read in bounded time.

    Refuses (``ImageError``) empty paths, missing files, directories, FIFOs, devices and
    sockets before reading anything, and files above ``max_bytes``. ``what`` names the input
    kind in messages ("image", "document"); ``knob`` is the setting that raises the cap.
    """
    raw = os.fspath(path)
    text = os.fsdecode(raw) if isinstance(raw, bytes) else raw
    source = source or text
    if not text.strip():
        raise ImageError(
            f"Empty path {text!r}: no {what} file given. Fix: pass the path of an {what} file "
            "(an empty string is never read as the current directory).",
            source=source,
        )
    if "\x00" in text:
        raise ImageError(
            f"Path {source!r} contains a NUL character. Fix: pass a valid file path.",
            source=source,
        )
    full = os.path.expanduser(text)
    try:
        info = os.stat(full)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _not_found(source, text, what) from exc
    except PermissionError as exc:
        raise ImageError(
            f"Permission denied reading {source}. Fix: check the file's permissions.",
            source=source,
        ) from exc
    except (OSError, ValueError) as exc:
        raise ImageError(f"Cannot read {what} file {source}: {exc}.", source=source) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(
            f"{source} is {_file_kind(info.st_mode)}, not a regular {what} file; it was not "
            f"read. Fix: pass the path of an {what} file.",
            source=source,
        )
    if info.st_size > max_bytes:
        raise _too_big(source, _mb(info.st_size), max_bytes, what, knob)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        raise ImageError(f"Cannot open {what} file {source}: {exc}.", source=source) from exc
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # replaced between stat and open
            raise ImageError(
                f"{source} is {_file_kind(opened.st_mode)}, not a regular {what} file; it was "
                f"not read. Fix: pass the path of an {what} file.",
                source=source,
            )
        with open(fd, "rb", closefd=False) as handle:
            # the size from fstat first (one allocation); a file that grew is read on, to the cap
            data = handle.read(min(opened.st_size, max_bytes) + 1)
            if len(data) > opened.st_size:
                rest = [data]
                total = len(data)
                while total <= max_bytes:
                    chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
                    if not chunk:
                        break
                    rest.append(chunk)
                    total += len(chunk)
                data = b"".join(rest)
    except OSError as exc:
        raise ImageError(f"Cannot read {what} file {source}: {exc}.", source=source) from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _too_big(source, f"more than {_mb(max_bytes)}", max_bytes, what, knob)
    return data


def _read_stream(stream: Any, source: str, max_bytes: int, what: str, knob: str) -> bytes:
    read = stream.read
    try:
        try:
            data = read(max_bytes + 1)
        except TypeError:  # a read() that takes no size
            data = read()
    except io.UnsupportedOperation as exc:
        raise ImageError(
            f"{source} is not open for reading ({exc}). Fix: open it with open(path, 'rb').",
            source=source,
        ) from exc
    except (OSError, ValueError) as exc:  # closed file, I/O error
        raise ImageError(f"Cannot read {what} {source}: {exc}.", source=source) from exc
    if isinstance(data, str):
        raise ImageError(
            f"{source} is a text-mode file (read() returned str); open {what}s with "
            "open(path, 'rb').",
            source=source,
        )
    if data is None:
        raise ImageError(
            f"{source} returned no data (None: a non-blocking stream with nothing to read). "
            "Fix: pass a blocking binary file, the path, or the bytes.",
            source=source,
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(
            f"{source}.read() returned {type(data).__name__}, not bytes. Fix: pass a binary "
            "file object (open(path, 'rb')), the path, or the bytes.",
            source=source,
        )
    if len(data) > max_bytes:
        raise _too_big(source, f"more than {_mb(max_bytes)}", max_bytes, what, knob)
    if not data:
        raise ImageError(
            f"{source} returned 0 bytes (an empty file, or already read to the end: seek(0) "
            "first).",
            source=source,
        )
    return bytes(data)


def read_input(
    image: Any,
    source: str,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    what: str = "image",
    knob: str = "ImagePrep(max_file_bytes=...)",
) -> tuple[bytes, str | None]:
    """Bytes and file name (if any) of a path, bytes-like object or binary file object."""
    if isinstance(image, str | os.PathLike):
        data = read_file(image, source=source, max_bytes=max_bytes, what=what, knob=knob)
        name = os.path.basename(os.fsdecode(os.fspath(image)).rstrip("/\\"))
        return data, name or None
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image), None
    if callable(getattr(image, "read", None)):
        data = _read_stream(image, source, max_bytes, what, knob)
        label = getattr(image, "name", None)
        return data, os.path.basename(label) if isinstance(label, str) else None
    kinds = (
        "a PIL image, a numpy array, an http(s) URL or a data: URI"
        if what == "image"
        else "or an http(s) URL"
    )
    raise ImageError(
        f"Unsupported {what} input {source}. Pass a file path, pathlib.Path, bytes, a binary "
        f"file object, {kinds}.",
        source=source,
    )
