"""The input kinds every surface that takes an image must handle, as importable data.

Each ``Case`` builds its input in a temporary directory (``Ctx.tmp``; URLs are published on a
loopback file server, ``Ctx.publish``) and states the outcome a user must see through
``Mathpix.text`` / ``AsyncMathpix.text`` against the local echo server:

* ``error`` is None: the call succeeds and the result text matches ``match`` (the echo
  engine's text is ``echo WxH sha:...``);
* otherwise the call raises ``error`` (a specific class) whose message matches ``match``.

``kind`` groups the cases (``file``, ``special``, ``bytes``, ``stream``, ``pil``, ``numpy``,
``remote``, ``crop``, ``prepared``, ``option``, ``format``) so a surface can take the ones it
accepts (the CLI and the loader take paths; bulk takes every kind a DataFrame cell can hold).
``needs`` names what the case requires (``posix`` for FIFOs and devices, ``linux``, ``numpy``,
``opencv``, ``opencv_exr``, ``jpeg2000``; ``missing(case)`` says which are absent here).
``crop``, ``prepare`` and ``options`` are passed to the call when set.

The client test is tests/client/test_image_inputs.py; other surfaces reuse ``INPUT_KINDS``.
"""

from __future__ import annotations

import array
import io
import os
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from mathpix_nb import (
    ConfigurationError,
    ImageError,
    ImagePrep,
    OcrError,
    OptionError,
    prepare_image,
)

__all__ = ["INPUT_KINDS", "Case", "Ctx", "FileServer", "encoded", "missing", "page"]

OK = r"^echo \d+x\d+ sha:"


@dataclass
class Ctx:
    """Where a case builds its input: a fresh directory and a loopback URL publisher."""

    tmp: Path
    publish: Callable[[str, bytes, str], str]  # (name, data, content type) -> http URL
    _opened: list[Any] = field(default_factory=list)

    def keep(self, handle: Any) -> Any:
        """Register a handle (file, socket) to close after the case."""
        self._opened.append(handle)
        return handle

    def close(self) -> None:
        for handle in self._opened:
            with suppress(Exception):
                handle.close()


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    make: Callable[[Ctx], Any]
    error: type[Exception] | None = None
    match: str = OK
    crop: Any = None
    prepare: Any = None
    needs: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # v3/text options for the call

    @property
    def ok(self) -> bool:
        return self.error is None


# -- image makers -------------------------------------------------------------------------
def page(width: int = 320, height: int = 80, mode: str = "RGB") -> Image.Image:
    """A small non-blank image (the echo engine answers image_no_content for blank ones)."""
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    draw.rectangle((4, 4, max(5, width // 3), max(5, height // 2)), fill=(20, 40, 200))
    draw.text((10, height // 3), "x^2 + y^2", fill="black")
    return im if mode == "RGB" else im.convert(mode)


def encoded(im: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        path = ctx.tmp / name
        path.write_bytes(data() if callable(data) else data)
        return path

    return make


def _png_header(width: int, height: int, mode: int = 0) -> bytes:
    """A PNG whose header announces width x height (gray) with one tiny compressed row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * min(width, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(page(400, 200), "JPEG", exif=exif.tobytes(), quality=90)


def _truncated(fmt: str) -> Callable[[], bytes]:
    def make() -> bytes:
        data = encoded(page(600, 400), fmt)
        return data[: len(data) // 2]

    return make


def _corrupt_png() -> bytes:
    data = bytearray(encoded(page(300, 200)))
    start = data.index(b"IDAT") + 8
    data[start : start + 64] = bytes(64)  # zeroed deflate stream, CRC left stale
    return bytes(data)


def _fifo(ctx: Ctx) -> Path:
    path = ctx.tmp / "pipe.png"
    os.mkfifo(path)
    return path


def _socket(ctx: Ctx) -> Path:
    path = ctx.tmp / "sock.png"
    sock = ctx.keep(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    sock.bind(str(path))
    return path


def _symlink(target: Callable[[Ctx], Path], name: str) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        link = ctx.tmp / name
        link.symlink_to(target(ctx))
        return link

    return make


class _ReadReturns:
    """A file-like object whose read() returns ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.name = "weird.png"

    def read(self, size: int = -1) -> Any:
        return self.value


def _closed_file(ctx: Ctx) -> Any:
    path = ctx.tmp / "closed.png"
    path.write_bytes(encoded(page()))
    handle = path.open("rb")
    handle.close()
    return handle


def _open(name: str, mode: str, data: bytes | None = None) -> Callable[[Ctx], Any]:
    def make(ctx: Ctx) -> Any:
        path = ctx.tmp / name
        path.write_bytes(data if data is not None else encoded(page()))
        return ctx.keep(path.open(mode))

    return make


def _at_end(ctx: Ctx) -> io.BytesIO:
    buf = io.BytesIO(encoded(page()))
    buf.read()
    return buf


def _lazy_pil(data: bytes | Callable[[], bytes]) -> Callable[[Ctx], Image.Image]:
    def make(ctx: Ctx) -> Image.Image:
        raw = data() if callable(data) else data
        return Image.open(io.BytesIO(raw))

    return make


def _pil_mode(mode: str) -> Callable[[Ctx], Image.Image]:
    def make(ctx: Ctx) -> Image.Image:
        base = page()
        gray = base.convert("L")
        if mode == "F":
            return gray.convert("F").point(lambda v: v / 255)  # floats in 0..1
        if mode == "I":
            return gray.convert("I")
        if mode.startswith("I;16"):
            wide = gray.convert("I").point(lambda v: v * 257).convert("I;16")  # little-endian
            raw = wide.tobytes()
            if mode == "I;16B":
                swapped = array.array("H", raw)
                swapped.byteswap()
                raw = swapped.tobytes()
            return wide if mode == "I;16" else Image.frombytes(mode, wide.size, raw)
        if mode == "La":
            return _la_premultiplied(base)
        if mode in ("RGBa", "PA"):
            return base.convert("RGBA").convert(mode)
        return base.convert(mode)

    return make


def _la_premultiplied(base: Image.Image) -> Image.Image:
    gray = base.convert("L")
    alpha = Image.new("L", base.size, 255)
    return Image.merge("La", (gray, alpha))


def _np(build: Callable[[Any], Any]) -> Callable[[Ctx], Any]:
    def make(ctx: Ctx) -> Any:
        import numpy as np

        return build(np)

    return make


def _gray(np: Any) -> Any:
    return np.asarray(page().convert("L"))


def _rgb(np: Any) -> Any:
    return np.asarray(page())


def _url(name: str, data: bytes | Callable[[], bytes], ctype: str) -> Callable[[Ctx], str]:
    def make(ctx: Ctx) -> str:
        return ctx.publish(name, data() if callable(data) else data, ctype)

    return make


def _data_uri(data: bytes | Callable[[], bytes], ctype: str = "image/png") -> Callable[[Ctx], str]:
    import base64

    def make(ctx: Ctx) -> str:
        raw = data() if callable(data) else data
        return f"data:{ctype};base64," + base64.b64encode(raw).decode()

    return make


def _opencv_file(ext: str, pixels: str = "u8") -> Callable[[Ctx], Path]:
    """A file written by OpenCV itself: ``pixels`` is u8 (BGR), gray, u16 (BGR x 257), gray16, f32
    (BGR in 0..1) or linear (light, for the HDR formats)."""

    def make(ctx: Ctx) -> Path:
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
        import cv2
        import numpy as np

        bgr = np.ascontiguousarray(np.asarray(page())[:, :, ::-1])
        arrays = {
            "u8": lambda: bgr,
            "gray": lambda: np.asarray(page().convert("L")),
            "u16": lambda: bgr.astype(np.uint16) * 257,
            "gray16": lambda: np.asarray(page().convert("L")).astype(np.uint16) * 257,
            "f32": lambda: bgr.astype(np.float32) / 255.0,
            "linear": lambda: (bgr.astype(np.float32) / 255.0) ** 2.2,
        }
        ok, buf = cv2.imencode(ext, arrays[pixels]())
        assert ok
        path = ctx.tmp / f"image-{pixels}{ext}"
        path.write_bytes(buf.tobytes())
        return path

    return make


def _png_exif_after_idat() -> bytes:
    """A PNG (stored sideways, 400x200) whose eXIf chunk (orientation 6) follows the pixels."""
    data = encoded(page(400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()
    if body.startswith(b"Exif\x00\x00"):
        body = body[6:]
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF)
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


PNG = encoded(page())
_DIM = "Image file not found"

INPUT_KINDS: list[Case] = [
    # -- files ----------------------------------------------------------------------------
    Case("png_path_str", "file", lambda c: str(_file("a.png", PNG)(c))),
    Case("png_pathlib", "file", _file("b.png", PNG)),
    Case("jpeg_exif_rotated", "file", _file("photo.jpg", _exif_jpeg), match=r"^echo 200x400 "),
    Case(
        "png_exif_after_pixels",
        "file",
        _file("late-exif.png", _png_exif_after_idat),
        match=r"^echo 200x400 ",
    ),
    Case("glob_chars_literal", "file", _file("scan[1].png", PNG)),
    Case("glob_star_question", "file", _file("a*b?.png", PNG)),
    Case("unicode_name", "file", _file("формула ∑.png", PNG)),
    Case("symlink_to_png", "file", _symlink(_file("real.png", PNG), "link.png")),
    Case("missing_file", "file", lambda c: c.tmp / "missing.png", ImageError, _DIM),
    Case(
        "broken_symlink",
        "file",
        _symlink(lambda c: c.tmp / "gone.png", "dead.png"),
        ImageError,
        _DIM,
    ),
    Case("empty_path", "file", lambda c: "", ImageError, "Empty path"),
    Case("whitespace_path", "file", lambda c: "   ", ImageError, "Empty path"),
    Case("nul_in_path", "file", lambda c: "bad\x00name.png", ImageError, "NUL"),
    Case("s3_url_as_path", "file", lambda c: "s3://bucket/key.png", ImageError, "http"),
    Case("directory", "file", lambda c: c.tmp, ImageError, "is a directory"),
    Case("empty_file", "file", _file("empty.png", b""), ImageError, "empty"),
    Case(
        "truncated_png",
        "file",
        _file("cut.png", _truncated("PNG")),
        ImageError,
        "truncated|Cannot decode",
    ),
    Case(
        "truncated_jpeg",
        "file",
        _file("cut.jpg", _truncated("JPEG")),
        ImageError,
        "truncated|Cannot decode",
    ),
    Case("corrupt_png", "file", _file("bad.png", _corrupt_png), ImageError, "Cannot decode"),
    Case(
        "text_file",
        "file",
        _file("notes.png", b"hello, not an image"),
        ImageError,
        "convert it to PNG",
    ),
    Case(
        "html_file",
        "file",
        _file("page.jpg", b"<!doctype html><html></html>"),
        ImageError,
        "looks like text",
    ),
    Case("pdf_file", "file", _file("doc.png", b"%PDF-1.7\n%\xe2\xe3\n"), ImageError, "client.pdf"),
    Case(
        "heic_unreadable",
        "file",
        _file("x.heic", b"\x00\x00\x00\x18ftypheic" + bytes(16)),
        ImageError,
        "HEIC|pillow-heif",
    ),
    Case(
        "over_file_cap",
        "file",
        _file("big.png", PNG),
        ImageError,
        "max_file_bytes",
        prepare=ImagePrep(max_file_bytes=100),
    ),
    Case(
        "pixel_bomb_header",
        "file",
        _file("bomb.png", lambda: _png_header(30000, 30000)),
        ImageError,
        "pixels|too large",
    ),
    Case(
        "over_decode_budget",
        "file",
        _file("wide.png", lambda: encoded(page(1200, 900))),
        ImageError,
        "max_decode_bytes",
        prepare=ImagePrep(max_decode_bytes=1_000_000),
    ),
    Case(
        "strip_50000x10",
        "file",
        _file("strip.png", lambda: encoded(page(50000, 10, "L"))),
        ImageError,
        "too long and thin",
    ),
    Case(
        "strip_6000x40_kept_legible",
        "file",
        _file("line.png", lambda: encoded(page(6000, 40, "L"))),
        match=r"^echo 6000x40 ",
    ),
    Case(
        "animated_gif",
        "file",
        _file(
            "anim.gif",
            lambda: encoded(
                page().convert("P"), "GIF", save_all=True, append_images=[page(mode="P")]
            ),
        ),
    ),
    Case("ico", "file", _file("icon.ico", lambda: encoded(page(64, 64), "ICO"))),
    Case("bmp", "file", _file("a.bmp", lambda: encoded(page(), "BMP"))),
    Case("webp", "file", _file("a.webp", lambda: encoded(page(), "WEBP"))),
    Case("tiff", "file", _file("a.tif", lambda: encoded(page(), "TIFF"))),
    Case("png_16bit", "file", _file("deep.png", lambda: encoded(_pil_mode("I;16")(None)))),
    Case(
        "png_16bit_8bit_values",
        "file",
        _file("shallow.png", lambda: encoded(page().convert("I;16"))),
    ),
    Case("cmyk_jpeg", "file", _file("print.jpg", lambda: encoded(page().convert("CMYK"), "JPEG"))),
    Case("transparent_png", "file", _file("alpha.png", lambda: encoded(page().convert("RGBA")))),
    # -- special files (never read; never block) ---------------------------------------------
    Case("fifo", "special", _fifo, ImageError, "FIFO", needs=("posix",)),
    Case(
        "symlink_to_fifo",
        "special",
        _symlink(_fifo, "pipe-link.png"),
        ImageError,
        "FIFO",
        needs=("posix",),
    ),
    Case(
        "dev_zero",
        "special",
        lambda c: "/dev/zero",
        ImageError,
        "character device",
        needs=("posix",),
    ),
    Case(
        "dev_null",
        "special",
        lambda c: Path("/dev/null"),
        ImageError,
        "character device",
        needs=("posix",),
    ),
    Case("unix_socket", "special", _socket, ImageError, "socket", needs=("posix",)),
    Case(
        "proc_file_size_0",
        "special",
        lambda c: "/proc/self/status",
        ImageError,
        "convert it to PNG|looks like text",
        needs=("linux",),
    ),
    # -- bytes --------------------------------------------------------------------------------
    Case("bytes", "bytes", lambda c: PNG),
    Case("bytearray", "bytes", lambda c: bytearray(PNG)),
    Case("memoryview", "bytes", lambda c: memoryview(PNG)),
    Case("empty_bytes", "bytes", lambda c: b"", ImageError, "empty"),
    Case("random_bytes", "bytes", lambda c: os.urandom(2048), ImageError, "convert it to PNG"),
    # -- file objects ---------------------------------------------------------------------------
    Case("bytesio", "stream", lambda c: io.BytesIO(PNG)),
    Case("binary_file", "stream", _open("f.png", "rb")),
    Case("bytesio_at_end", "stream", _at_end, ImageError, "seek"),
    Case("text_mode_file", "stream", _open("t.png", "r", b"some text"), ImageError, "text-mode"),
    Case("stringio", "stream", lambda c: io.StringIO("not bytes"), ImageError, "text-mode"),
    Case("read_returns_int", "stream", lambda c: _ReadReturns(42), ImageError, "returned int"),
    Case("read_returns_none", "stream", lambda c: _ReadReturns(None), ImageError, "None"),
    Case(
        "read_returns_list", "stream", lambda c: _ReadReturns([1, 2]), ImageError, "returned list"
    ),
    Case("closed_file", "stream", _closed_file, ImageError, "closed"),
    Case("write_only_file", "stream", _open("w.png", "wb"), ImageError, "not open for reading"),
    Case("unsupported_object", "stream", lambda c: 12345, ImageError, "Unsupported image input"),
    # -- PIL images -----------------------------------------------------------------------------
    *[
        Case(f"pil_{mode.replace(';', '_')}", "pil", _pil_mode(mode))
        for mode in (
            "1",
            "L",
            "LA",
            "La",
            "P",
            "PA",
            "RGB",
            "RGBA",
            "RGBa",
            "RGBX",
            "CMYK",
            "YCbCr",
            "LAB",
            "HSV",
            "I",
            "I;16",
            "I;16L",
            "I;16B",
            "I;16N",
            "F",
        )
    ],
    Case("pil_0x0", "pil", lambda c: Image.new("RGB", (0, 0)), ImageError, "empty"),
    Case("pil_0x10", "pil", lambda c: Image.new("L", (0, 10)), ImageError, "empty"),
    Case("pil_lazy_opened", "pil", _lazy_pil(PNG)),
    Case(
        "pil_lazy_truncated",
        "pil",
        _lazy_pil(_truncated("PNG")),
        ImageError,
        "truncated|Cannot decode",
    ),
    Case("pil_exif_rotated", "pil", _lazy_pil(_exif_jpeg), match=r"^echo 200x400 "),
    # -- numpy arrays ---------------------------------------------------------------------------
    Case("np_uint8_gray", "numpy", _np(_gray), needs=("numpy",)),
    Case("np_uint8_rgb", "numpy", _np(_rgb), needs=("numpy",)),
    Case(
        "np_uint8_rgba",
        "numpy",
        _np(lambda np: np.asarray(page().convert("RGBA"))),
        needs=("numpy",),
    ),
    Case("np_hw1", "numpy", _np(lambda np: _gray(np)[:, :, None]), needs=("numpy",)),
    Case(
        "np_hw2_gray_alpha",
        "numpy",
        _np(lambda np: np.stack([_gray(np), np.full_like(_gray(np), 255)], axis=-1)),
        needs=("numpy",),
    ),
    Case("np_bool", "numpy", _np(lambda np: _gray(np) > 128), needs=("numpy",)),
    Case("np_uint16", "numpy", _np(lambda np: _gray(np).astype(np.uint16) * 257), needs=("numpy",)),
    Case(
        "np_uint16_big_endian",
        "numpy",
        _np(lambda np: (_gray(np).astype(np.uint16) * 257).astype(">u2")),
        needs=("numpy",),
    ),
    *[
        Case(f"np_{dtype}", "numpy", _np(lambda np, d=dtype: _gray(np).astype(d)), needs=("numpy",))
        for dtype in ("int8", "int16", "int32", "int64", "uint32", "uint64")
    ],
    Case(
        "np_int_negative_range",
        "numpy",
        _np(lambda np: _gray(np).astype(np.int32) * 40 - 5000),
        needs=("numpy",),
    ),
    *[
        Case(
            f"np_{dtype}_unit",
            "numpy",
            _np(lambda np, d=dtype: (_rgb(np) / 255).astype(d)),
            needs=("numpy",),
        )
        for dtype in ("float16", "float32", "float64")
    ],
    Case("np_float_0_255", "numpy", _np(lambda np: _rgb(np).astype(np.float64)), needs=("numpy",)),
    Case(
        "np_float_hdr_range",
        "numpy",
        _np(lambda np: _rgb(np).astype(np.float32) * 40.0),
        needs=("numpy",),
    ),
    Case("np_non_contiguous", "numpy", _np(lambda np: _rgb(np)[::-1, ::2]), needs=("numpy",)),
    Case(
        "np_fortran_order", "numpy", _np(lambda np: np.asfortranarray(_gray(np))), needs=("numpy",)
    ),
    Case(
        "np_0x0",
        "numpy",
        _np(lambda np: np.zeros((0, 0), np.uint8)),
        ImageError,
        "empty",
        needs=("numpy",),
    ),
    Case(
        "np_0xN",
        "numpy",
        _np(lambda np: np.zeros((0, 7, 3), np.uint8)),
        ImageError,
        "empty",
        needs=("numpy",),
    ),
    Case(
        "np_Nx0",
        "numpy",
        _np(lambda np: np.zeros((7, 0), np.uint8)),
        ImageError,
        "empty",
        needs=("numpy",),
    ),
    Case(
        "np_1d",
        "numpy",
        _np(lambda np: np.arange(100, dtype=np.uint8)),
        ImageError,
        "expected shape",
        needs=("numpy",),
    ),
    Case(
        "np_0d",
        "numpy",
        _np(lambda np: np.array(7, dtype=np.uint8)),
        ImageError,
        "expected shape",
        needs=("numpy",),
    ),
    Case(
        "np_4d",
        "numpy",
        _np(lambda np: np.zeros((1, 8, 8, 3), np.uint8)),
        ImageError,
        "batch of one",
        needs=("numpy",),
    ),
    Case(
        "np_5_channels",
        "numpy",
        _np(lambda np: np.zeros((8, 8, 5), np.uint8)),
        ImageError,
        "expected shape",
        needs=("numpy",),
    ),
    Case(
        "np_channel_first",
        "numpy",
        _np(lambda np: _rgb(np).transpose(2, 0, 1)),
        ImageError,
        "channel-first",
        needs=("numpy",),
    ),
    Case(
        "np_object",
        "numpy",
        _np(lambda np: np.array([[object()] * 3] * 3)),
        ImageError,
        "dtype object",
        needs=("numpy",),
    ),
    Case(
        "np_str",
        "numpy",
        _np(lambda np: np.array([["a", "b"], ["c", "d"]])),
        ImageError,
        "str",
        needs=("numpy",),
    ),
    Case(
        "np_bytes",
        "numpy",
        _np(lambda np: np.array([[b"a", b"b"]])),
        ImageError,
        "bytes",
        needs=("numpy",),
    ),
    Case(
        "np_complex",
        "numpy",
        _np(lambda np: np.ones((8, 8), np.complex64)),
        ImageError,
        "complex",
        needs=("numpy",),
    ),
    Case(
        "np_datetime",
        "numpy",
        _np(lambda np: np.zeros((8, 8), "datetime64[s]")),
        ImageError,
        "datetime",
        needs=("numpy",),
    ),
    Case(
        "np_timedelta",
        "numpy",
        _np(lambda np: np.zeros((8, 8), "timedelta64[s]")),
        ImageError,
        "timedelta",
        needs=("numpy",),
    ),
    Case(
        "np_structured",
        "numpy",
        _np(lambda np: np.zeros((8, 8), dtype=[("a", "u1")])),
        ImageError,
        "structured",
        needs=("numpy",),
    ),
    Case(
        "np_nan",
        "numpy",
        _np(lambda np: np.full((8, 8), np.nan)),
        ImageError,
        "NaN",
        needs=("numpy",),
    ),
    Case(
        "np_inf",
        "numpy",
        _np(lambda np: np.where(_gray(np) > 100, np.inf, 0.0)),
        ImageError,
        "infinite",
        needs=("numpy",),
    ),
    # -- URLs and data URIs (sent as JSON src; the server fetches / decodes) --------------------
    Case("http_url", "remote", _url("a.png", PNG, "image/png")),
    Case("http_url_leading_space", "remote", lambda c: "  " + c.publish("b.png", PNG, "image/png")),
    Case(
        "http_url_404",
        "remote",
        lambda c: c.publish("", b"", "") + "/nothing-here.png",
        OcrError,
        "image_download_error",
    ),
    Case(
        "http_url_not_an_image",
        "remote",
        _url("x.png", b"<html></html>", "text/html"),
        OcrError,
        "image_decode_error",
    ),
    Case("data_uri_png", "remote", _data_uri(PNG)),
    Case(
        "data_uri_bad_base64",
        "remote",
        lambda c: "data:image/png;base64,@@@not base64@@@",
        OcrError,
        "image_decode_error",
    ),
    Case(
        "data_uri_text", "remote", _data_uri(b"hello", "text/plain"), OcrError, "image_decode_error"
    ),
    # a URL with a crop is downloaded and cut locally, in upright pixels (EXIF applied)
    Case(
        "http_url_with_crop",
        "remote",
        _url("c.png", PNG, "image/png"),
        match=r"^echo 100x40 ",
        crop=(0, 0, 100, 40),
    ),
    Case(
        "http_url_crop_negative_origin",
        "remote",
        _url("d.png", PNG, "image/png"),
        match=r"^echo 90x40 ",
        crop=(-10, 0, 100, 40),
    ),
    Case(
        "http_url_crop_exif_upright",
        "remote",
        _url("r.jpg", _exif_jpeg, "image/jpeg"),
        match=r"^echo 200x50 ",
        crop=(0, 0, 200, 50),
    ),
    Case(
        "http_url_crop_404",
        "remote",
        lambda c: c.publish("", b"", "") + "/gone.png",
        ImageError,
        "HTTP 404",
        crop=(0, 0, 10, 10),
    ),
    Case(
        "data_uri_with_crop", "remote", _data_uri(PNG), match=r"^echo 30x20 ", crop=(0, 0, 30, 20)
    ),
    Case(
        "http_url_crop_inf",
        "remote",
        _url("e.png", PNG, "image/png"),
        ImageError,
        "crop=.*finite",
        crop=(0, 0, float("inf"), 10),
    ),
    # -- crops of a 320x80 image --------------------------------------------------------------
    Case("crop_inside", "crop", lambda c: PNG, match=r"^echo 100x40 ", crop=(0, 0, 100, 40)),
    Case(
        "crop_partly_outside_is_clipped",
        "crop",
        lambda c: PNG,
        match=r"^echo 90x80 ",
        crop=(-10, -10, 100, 100),
    ),
    Case(
        "crop_past_right_edge_is_clipped",
        "crop",
        lambda c: PNG,
        match=r"^echo 220x50 ",
        crop=(100, 30, 300, 100),
    ),
    Case(
        "crop_fractional_covers_pixels",
        "crop",
        lambda c: PNG,
        match=r"^echo 11x11 ",
        crop=(0.5, 0.5, 10.2, 10.2),
    ),
    Case(
        "crop_numpy_values",
        "crop",
        _np(lambda np: PNG),
        match=r"^echo 50x40 ",
        crop=(0, 0, 50, 40),
        needs=("numpy",),
    ),
    Case("crop_list", "crop", lambda c: PNG, match=r"^echo 50x40 ", crop=[10, 10, 50, 40]),
    Case(
        "crop_entirely_outside",
        "crop",
        lambda c: PNG,
        ImageError,
        "outside",
        crop=(400, 400, 10, 10),
    ),
    Case(
        "crop_inf",
        "crop",
        lambda c: PNG,
        ImageError,
        "crop=.*finite",
        crop=(0, 0, float("inf"), 10),
    ),
    Case(
        "crop_nan",
        "crop",
        lambda c: PNG,
        ImageError,
        "crop=.*finite",
        crop=(float("nan"), 0, 10, 10),
    ),
    Case("crop_string", "crop", lambda c: PNG, ImageError, "crop=.*not a box", crop="0,0,10,10"),
    Case(
        "crop_dict",
        "crop",
        lambda c: PNG,
        ImageError,
        "crop=.*not a box",
        crop={"x": 0, "y": 0, "w": 5, "h": 5},
    ),
    Case("crop_three_values", "crop", lambda c: PNG, ImageError, "crop=.*3 values", crop=(1, 2, 3)),
    Case(
        "crop_negative_size", "crop", lambda c: PNG, ImageError, "crop=.*> 0", crop=(0, 0, -5, 10)
    ),
    Case("crop_zero_size", "crop", lambda c: PNG, ImageError, "crop=.*> 0", crop=(0, 0, 0, 10)),
    Case(
        "crop_none_value",
        "crop",
        lambda c: PNG,
        ImageError,
        "crop=.*not a number",
        crop=(0, None, 10, 10),
    ),
    Case(
        "crop_bool_value",
        "crop",
        lambda c: PNG,
        ImageError,
        "crop=.*not a number",
        crop=(True, 0, 10, 10),
    ),
    Case("crop_int_not_iterable", "crop", lambda c: PNG, ImageError, "crop=.*not a box", crop=5),
    # -- prepared images and preparation settings ---------------------------------------------
    Case("prepared_image", "prepared", lambda c: prepare_image(page(900, 300))),
    Case(
        "prepare_wrong_type",
        "prepared",
        lambda c: PNG,
        ConfigurationError,
        "prepare must be",
        prepare="yes",
    ),
    # -- options of wrong types (checked before the image is read) --------------------------
    Case(
        "option_set_value",
        "option",
        lambda c: PNG,
        OptionError,
        "formats.*list of str",
        options={"formats": {"text"}},
    ),
    Case(
        "option_str_for_list",
        "option",
        lambda c: PNG,
        OptionError,
        "formats.*got str",
        options={"formats": "text"},
    ),
    Case(
        "option_typo",
        "option",
        lambda c: PNG,
        OptionError,
        "Did you mean 'formats'",
        options={"fromats": ["text"]},
    ),
    Case(
        "option_wrong_number",
        "option",
        lambda c: PNG,
        OptionError,
        "confidence_threshold.*float",
        options={"confidence_threshold": "high"},
    ),
    Case(
        "option_src_given",
        "option",
        lambda c: PNG,
        ConfigurationError,
        "first argument",
        options={"src": "https://example.com/a.png"},
    ),
    Case(
        "option_extra_not_json",
        "option",
        lambda c: PNG,
        OptionError,
        "cannot be sent as JSON",
        options={"extra_options": {"x": {1, 2}}},
    ),
    Case(
        "prepare_dict_typo",
        "option",
        lambda c: PNG,
        OptionError,
        "max_side",
        prepare={"max_sid": 800},
    ),
    Case(
        "prepare_dict_zero",
        "option",
        lambda c: PNG,
        ConfigurationError,
        "max_side=0",
        prepare={"max_side": 0},
    ),
    # -- the formats Mathpix reads (OpenCV's list), in files OpenCV writes --------------------
    Case("opencv_exr", "format", _opencv_file(".exr", "linear"), needs=("opencv", "opencv_exr")),
    Case("opencv_hdr", "format", _opencv_file(".hdr", "linear"), needs=("opencv",)),
    Case("opencv_pfm", "format", _opencv_file(".pfm", "f32"), needs=("opencv",)),
    Case("opencv_pam", "format", _opencv_file(".pam"), needs=("opencv",)),
    Case("opencv_tiff_float32", "format", _opencv_file(".tiff", "f32"), needs=("opencv",)),
    Case("opencv_tiff_uint16", "format", _opencv_file(".tiff", "u16"), needs=("opencv",)),
    Case("opencv_png_uint16", "format", _opencv_file(".png", "u16"), needs=("opencv",)),
    Case("opencv_pgm_uint16", "format", _opencv_file(".pgm", "gray16"), needs=("opencv",)),
    Case("opencv_jpeg2000", "format", _opencv_file(".jp2"), needs=("opencv", "jpeg2000")),
    Case("opencv_pbm", "format", _opencv_file(".pbm", "gray"), needs=("opencv",)),
    Case("opencv_pgm", "format", _opencv_file(".pgm", "gray"), needs=("opencv",)),
    Case("opencv_ppm", "format", _opencv_file(".ppm"), needs=("opencv",)),
    Case("opencv_pnm", "format", _opencv_file(".pnm"), needs=("opencv",)),
    Case("opencv_sun_raster", "format", _opencv_file(".ras"), needs=("opencv",)),
    Case("opencv_dib", "format", _opencv_file(".dib"), needs=("opencv",)),
    Case("opencv_webp", "format", _opencv_file(".webp"), needs=("opencv",)),
    Case("opencv_jpeg", "format", _opencv_file(".jpg"), needs=("opencv",)),
    # sent as they are (prepare=False): the local server decodes them as Mathpix does
    *[
        Case(
            f"raw_{name}",
            "format",
            _opencv_file(ext, pixels),
            prepare=False,
            match=r"^echo 320x80 ",
            needs=needs,
        )
        for name, ext, pixels, needs in (
            ("exr", ".exr", "linear", ("opencv", "opencv_exr")),
            ("hdr", ".hdr", "linear", ("opencv",)),
            ("pfm", ".pfm", "f32", ("opencv",)),
            ("pam", ".pam", "u8", ("opencv",)),
            ("tiff_float32", ".tiff", "f32", ("opencv",)),
            ("jpeg2000", ".jp2", "u8", ("opencv", "jpeg2000")),
            ("sun_raster", ".ras", "u8", ("opencv",)),
            ("pbm", ".pbm", "gray", ("opencv",)),
        )
    ],
]


def missing(case: Case) -> list[str]:
    """The requirements of ``case`` this machine lacks (skip the case when not empty)."""
    import importlib.util
    import sys

    absent = []
    for need in case.needs:
        if (
            (need == "posix" and not hasattr(os, "mkfifo"))
            or (need == "linux" and not sys.platform.startswith("linux"))
            or (need == "numpy" and importlib.util.find_spec("numpy") is None)
        ):
            absent.append(need)
        elif need == "jpeg2000":
            from PIL import features

            if not features.check("jpg_2000"):
                absent.append(need)
        elif need in ("opencv", "opencv_exr"):
            from mathpix_nb import _image_cv

            if not _image_cv.opencv_reads("EXR" if need == "opencv_exr" else "PNG"):
                absent.append(need)
    return absent


# -- a loopback file server for the URL cases ----------------------------------------------
class FileServer:
    """Serves published bytes over loopback HTTP (the local server downloads ``src`` URLs)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self._server: Any = None
        self.url = ""

    def publish(self, name: str, data: bytes, content_type: str) -> str:
        if name:
            self.files[name] = (data, content_type)
        return f"{self.url}/{name}" if name else self.url

    @contextmanager
    def running(self) -> Iterator[FileServer]:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        from mathpix_nb._serving import ThreadedServer

        async def serve(request: Request) -> Response:
            found = self.files.get(request.path_params["name"])
            if found is None:
                return Response(b"not found", status_code=404)
            return Response(found[0], media_type=found[1])

        self._server = ThreadedServer(Starlette(routes=[Route("/{name}", serve)])).start()
        self.url = self._server.url
        try:
            yield self
        finally:
            self._server.stop()
