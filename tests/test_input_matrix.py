"""The input matrix of issue 11: ~70 input kinds x every surface that takes input.

Surfaces: ``Mathpix.text`` / ``AsyncMathpix.text``, bulk (``ocr_frame`` over [good, kind,
good]: the kind's row gets its own error, the others complete), the CLI (``mathpix-nb ocr``
in a subprocess), the LangChain loader and the LlamaIndex reader (``on_error="document"``
over [good, kind, good]: an error document, the others load), the panel's Python side
(``CropPanel``: load, set the crop, ``ocr()``) and ``%mathpix`` in an IPython shell. All
against the session's local echo server over loopback; each cell is bounded in time (a
special file must fail in < 2 s).

``ANSWER`` is the table: per kind, the words a user must read (one regex for every surface:
what is wrong and, where the surface says it, the fix). What each surface does with an error
follows from the kind's group; ``EXCEPT`` lists the cells that answer differently (the loader
refuses PIL images, the panel numpy arrays ...) and ``KNOWN`` the failures owned by other
helpers (strict xfails, to flip after their merges).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

from mathpix_nb import ConfigurationError, ImageError, OcrError, OptionError

from . import matrix_harness as h
from .inputs import OK, Ctx, FileServer, missing

pytest.importorskip("mathpix_nb.server")

KINDS = h.KINDS
SURFACES = ("client", "async", "bulk", "cli", "loader", "reader", "panel", "magic")

# -- what the user reads, per kind (None: the input works) -----------------------------------
ANSWER: dict[str, str | None] = {
    "png_path_str": None,
    "png_pathlib": None,
    "glob_chars_literal": None,
    "unicode_name": None,
    "symlink_to_png": None,
    "missing_file": r"not found|does not exist|No such file|No image file",
    "broken_symlink": r"not found|does not exist|broken symlink",
    "empty_path": r"[Ee]mpty (image )?(path|source string)|empty string",
    "whitespace_path": r"[Ee]mpty (image )?(path|source string)|empty string",
    "nul_in_path": r"NUL|No such file",
    "directory": r"is a directory|holds no image",
    "empty_file": r"empty|0 bytes",
    "truncated_png": r"truncated",
    "text_file": r"convert it to PNG|not an image the panel can read",
    "pixel_bomb_header": r"too large to decode safely",
    "strip_50000x10": r"too long and thin",
    "fifo": r"FIFO",
    "symlink_to_fifo": r"FIFO",
    "dev_zero": r"character device",
    "unix_socket": r"is a socket",
    "no_permission": r"[Pp]ermission",
    "bytes": None,
    "empty_bytes": r"empty|0 bytes",
    "random_bytes": r"convert it to PNG|not an image the panel can read",
    "bytesio": None,
    "stringio": r"text-mode",
    "closed_file": r"closed",
    "dict_input": r"Unsupported image input <dict>|dict",
    **{k: None for k in KINDS if k.startswith("pil_")},
    "pil_0x0": r"empty",
    "pil_lazy_truncated": r"truncated",
    **{k: None for k in KINDS if k.startswith("np_")},
    "np_0x0": r"empty",
    "np_object": r"dtype object",
    "np_str": r"str",
    "np_1d": r"expected shape",
    "np_channel_first": r"channel-first",
    "np_nan": r"NaN",
    "np_complex": r"complex",
    "http_url": None,
    "http_url_404": r"HTTP 404",
    "data_uri_png": None,
    "data_uri_bad_base64": r"base64",
    "data_uri_text": r"[Cc]annot decode|convert it to PNG|not an image",
    "crop_inf": r"crop.*(finite|inf)",
    "crop_partly_outside_is_clipped": None,
    "crop_entirely_outside": r"outside",
    "crop_string": r"crop.*(not a box|whole numbers|str)",
    "crop_int_not_iterable": r"crop.*(not a box|whole numbers|list)",
    "option_set_value": r"formats.*list of str",
    "option_typo": r"Did you mean 'formats'",
    "option_str_for_list": r"formats.*got str",
    "option_extra_not_json": r"JSON|extra_options",
    "region_int": r"region",
    "timeout_str": r"timeout",
    "key_trailing_newline": None,  # normalised: the key works
    "key_leading_space": None,
    "key_non_ascii": r"app_key.*non-ASCII.*Fix: copy it again",
}
assert set(ANSWER) == set(KINDS), set(KINDS) ^ set(ANSWER)

# the client's error class per kind (from tests/inputs.py, plus the kinds added here)
_CLASS = {k: h.BY_ID[k].error for k in KINDS if k in h.BY_ID}
_CLASS.update(
    no_permission=ImageError,
    dict_input=ImageError,
    region_int=ConfigurationError,
    timeout_str=ConfigurationError,
    key_trailing_newline=None,
    key_leading_space=None,
    key_non_ascii=ConfigurationError,
)

_NOT_A_SOURCE = r"cannot read a source of type"
_PANEL_NO_ARRAY = r"Cannot load an image from a ndarray"


@dataclass(frozen=True)
class Expect:
    """``how``: ok | raise | row (bulk/CLI row error, RAG error document) | exit2 (CLI)."""

    how: str
    error: Any = None
    match: str = OK


def expected(kind: h.Kind, surface: str) -> Expect | None:
    """What ``surface`` must answer for ``kind`` (None: it cannot take that input)."""
    answer = ANSWER[kind.id]
    cls = _CLASS[kind.id]
    fixed = EXCEPT.get((kind.id, surface))
    if fixed is not None:
        return fixed if fixed.how != "n/a" else None
    if surface in ("client", "async"):
        return Expect("ok") if answer is None else Expect("raise", cls, answer)
    group = kind.group
    is_setting = kind.is_setting and group not in ("special",)
    if surface == "bulk":
        if answer is None:
            return Expect("ok")
        if is_setting:  # a run-wide setting: refused before any OCR starts
            return Expect("raise", (ConfigurationError, OptionError, ImageError), answer)
        return Expect("row", None, answer)
    if surface == "cli":
        if kind.id not in CLI_KINDS:
            return None
        return Expect("ok") if answer is None else Expect("row", None, answer)
    if surface in ("loader", "reader"):
        if group == "crop" or kind.prepare is not None:
            return None  # the loaders take no crop
        if group in ("pil", "numpy", "stream", "prepared") and kind.id != "dict_input":
            return Expect("raise", TypeError, _NOT_A_SOURCE)
        if answer is None:
            return Expect("ok")
        if is_setting or kind.id in ("empty_path", "whitespace_path"):
            return Expect("raise", (ValueError, TypeError), answer)
        return Expect("row", None, answer)
    if surface == "panel":
        if group == "numpy":
            return Expect("raise", ImageError, _PANEL_NO_ARRAY)
        if answer is None:
            return Expect("ok")
        if group == "crop" and isinstance(cls, type) and kind.id != "crop_entirely_outside":
            return Expect("raise", TraitError, r"'crop' trait")
        return Expect("raise", (ImageError, ConfigurationError, OptionError), answer)
    if surface == "magic":
        if group not in ("file", "special", "remote", "crop"):
            return None  # the magic takes a path or URL on its line
        if answer is None:
            return Expect("ok")
        return Expect("raise", (ImageError, OcrError, ValueError), answer)
    raise AssertionError(surface)


CLI_KINDS = {
    "png_path_str",
    "glob_chars_literal",
    "missing_file",
    "empty_path",
    "directory",
    "fifo",
    "dev_zero",
    "unix_socket",
    "http_url",
    "data_uri_bad_base64",
    "key_trailing_newline",
    "key_non_ascii",
}

_NA = Expect("n/a")
EXCEPT: dict[tuple[str, str], Expect] = {
    # the loaders scan a directory: an empty one is an error document
    ("directory", "loader"): Expect("row", None, r"holds no image"),
    ("directory", "reader"): Expect("row", None, r"holds no image"),
    ("dict_input", "loader"): Expect("raise", TypeError, r"dict is not a list of paths"),
    ("dict_input", "reader"): Expect("raise", TypeError, r"dict is not a list of paths"),
    # bytes/stream inputs the bulk column does not hold: a per-row "unsupported_input"
    ("bytesio", "bulk"): Expect("row", None, r"unsupported_input: BytesIO"),
    ("stringio", "bulk"): Expect("row", None, r"unsupported_input: StringIO"),
    ("closed_file", "bulk"): Expect("row", None, r"unsupported_input"),
    ("dict_input", "bulk"): Expect("row", None, r"unsupported_input: dict"),
    ("bytesio", "panel"): Expect("ok"),
    # the panel's formats= accepts any iterable of format names
    ("option_set_value", "panel"): Expect("ok"),
    ("option_str_for_list", "panel"): _NA,
    ("option_extra_not_json", "panel"): Expect("raise", OptionError, r"cannot be sent as JSON"),
    ("option_extra_not_json", "loader"): Expect("raise", OptionError, r"extra_options"),
    ("option_extra_not_json", "reader"): Expect("raise", OptionError, r"extra_options"),
    ("crop_string", "magic"): Expect("ok"),  # --crop=0,0,10,10 is the magic's own syntax
    ("timeout_str", "panel"): Expect("raise", OptionError, r"timeout"),
    ("key_non_ascii", "cli"): Expect("exit2", None, ANSWER["key_non_ascii"] or ""),
    # a run-wide crop can be outside one image and inside the next, so bulk cannot refuse it
    # up front; here it is outside every image, so every row fails (tests/bulk covers that)
    ("crop_entirely_outside", "bulk"): _NA,
}

# Cells owned by other helpers: (kind, surface) -> reason. ``run=False`` where it would hang.
KNOWN: dict[tuple[str, str], tuple[str, bool]] = {}  # none left


def _cells() -> Iterator[Any]:
    for kind in KINDS.values():
        for surface in SURFACES:
            expect = expected(kind, surface)
            if expect is None:
                continue
            marks = [pytest.mark.timeout(20 if surface == "cli" else 10)]
            known = KNOWN.get((kind.id, surface))
            if known is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=known[0], run=known[1]))
            yield pytest.param(kind, surface, expect, id=f"{kind.id}-{surface}", marks=marks)


CELLS = list(_cells())


def test_the_matrix_covers_the_issue() -> None:
    assert len(KINDS) >= 60
    assert {surface for _, surface, _ in (c.values for c in CELLS)} == set(SURFACES)
    for named in ("fifo", "dev_zero", "directory", "unix_socket", "broken_symlink", "np_0x0"):
        assert named in KINDS
    assert "empty_path" in KINDS and "dict_input" in KINDS and "data_uri_png" in KINDS


# -- fixtures (session-wide: one server, one file server, one shell) --------------------------
@pytest.fixture(scope="session")
def files() -> Iterator[FileServer]:
    with FileServer().running() as served:
        yield served


@pytest.fixture(scope="session")
def shell(local_server: Any) -> Iterator[Any]:
    from IPython.testing.globalipapp import get_ipython

    from mathpix_nb import Mathpix

    ip = get_ipython()
    ip.run_line_magic("load_ext", "mathpix_nb")
    with Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url) as client:
        ip.user_ns["client"] = client
        yield ip
    ip.user_ns.pop("client", None)
    ip.run_line_magic("unload_ext", "mathpix_nb")


def _check(kind: h.Kind, surface: str, expect: Expect, out: h.Outcome, secret: str) -> None:
    said = out.describe()
    assert secret not in said, "a credential was echoed"
    if surface != "cli":  # the CLI's own bound is its subprocess timeout
        assert out.seconds < (2 if kind.group == "special" else 8), f"{out.seconds:.1f} s: {said}"
    if expect.how == "ok":
        assert out.error is None and out.row_error is None, said
        if surface == "cli":
            assert out.exit_code == 0 and len(out.others) == 2, said  # no row lost
            assert all(re.search(OK, text or "") for _, text in out.others), said
        elif out.text is not None:
            assert re.search(OK if surface != "panel" else r".", out.text), said
        if surface != "cli":
            assert all(err is None for _, err in out.others), said
    elif expect.how == "raise":
        assert out.error is not None, f"expected {expect.error}, got {said}"
        assert isinstance(out.error, expect.error), said
        assert re.search(expect.match, str(out.error)), said
    elif expect.how == "row":
        if surface == "cli":
            assert out.exit_code == 1, said  # "some rows failed", never a crash
            rows = dict(out.others)
            assert len(rows) == 2, said
            errors = [v for k, v in rows.items() if not re.search(OK, v or "")]
            assert len(errors) == 1 and re.search(expect.match, errors[0] or ""), said
        else:
            assert out.error is None, said
            assert out.row_error is not None and re.search(expect.match, out.row_error), said
            assert all(text and err is None for text, err in out.others), said
    elif expect.how == "exit2":
        assert out.exit_code == 2, said
        assert re.search(expect.match, out.stderr), said
        assert "Traceback" not in out.stderr, said


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "surface", "expect"), CELLS)
async def test_cell(
    kind: h.Kind,
    surface: str,
    expect: Expect,
    local_server: Any,
    files: FileServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    case_needs = [n for n in kind.needs if n != "not_root"]
    absent = missing(h.BY_ID[kind.id]) if kind.id in h.BY_ID and case_needs else []
    if absent:
        pytest.skip(f"needs {', '.join(absent)}")
    if "not_root" in kind.needs and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads any file: no permission error to see")
    ctx_dir = tmp_path / "kind"
    ctx_dir.mkdir()
    ctx = Ctx(tmp=ctx_dir, publish=files.publish)
    secret = local_server.app_key
    try:
        image = kind.make(ctx)
        if surface == "client":
            out = h.run_client(local_server, kind, image)
        elif surface == "async":
            out = await h.run_async_client(local_server, kind, image)
        elif surface == "bulk":
            out = h.run_bulk(local_server, kind, image, tmp_path)
        elif surface == "cli":
            good = tmp_path / "good.png"
            good.write_bytes(h.GOOD)
            arg = h.cli_arg(image)
            if arg is None:  # a credential kind: two good images, the key from the env
                arg = str(ctx_dir / "good2.png")
                Path(arg).write_bytes(h.GOOD2)
            out = h.cli(local_server, kind, [str(good), arg], tmp_path)
        elif surface == "loader":
            out = h.run_loader(local_server, kind, image, ctx_dir)
        elif surface == "reader":
            out = h.run_reader(local_server, kind, image, ctx_dir)
        elif surface == "panel":
            out = h.run_panel(local_server, kind, image)
        else:
            line = h.magic_line(kind, image, tmp_path)
            if line is None:
                pytest.skip("the magic cannot take this input")
            out = h.run_magic(request.getfixturevalue("shell"), line)
        _check(kind, surface, expect, out, secret)
    finally:
        ctx.close()
