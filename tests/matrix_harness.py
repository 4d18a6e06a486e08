"""Runners for the input matrix (tests/test_input_matrix.py): one function per surface that
feeds it one input kind and reports what a user would see, as an :class:`Outcome`.

Every runner talks to the session's local echo server over loopback. A kind that a surface
cannot take at all (a PIL image on the command line) is not run there.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inputs import INPUT_KINDS, PNG, Ctx, encoded, page

__all__ = ["GOOD", "Kind", "Outcome", "env_for", "from_inputs"]

BY_ID = {case.id: case for case in INPUT_KINDS}
GOOD = PNG  # a 320x80 page the echo engine reads
GOOD2 = encoded(page(200, 60))


@dataclass(frozen=True)
class Kind:
    """One input kind: how to make the input and what to pass with it.

    ``client`` holds client settings (``region``, ``timeout``); ``app_key`` a credential to
    use instead of the server's (``{key}`` is replaced by the real one), given as an argument
    where the surface takes one and as ``MATHPIX_APP_KEY`` otherwise."""

    id: str
    group: str
    make: Callable[[Ctx], Any]
    crop: Any = None
    prepare: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    client: Mapping[str, Any] = field(default_factory=dict)
    app_key: str | None = None
    needs: tuple[str, ...] = ()

    @property
    def is_setting(self) -> bool:
        """Not an image: an argument of the call (crop, options, client settings, keys)."""
        return bool(
            self.crop is not None
            or self.prepare is not None
            or self.options
            or self.client
            or self.app_key
        )


def from_inputs(case_id: str) -> Kind:
    case = BY_ID[case_id]
    return Kind(
        case.id,
        case.kind,
        case.make,
        crop=case.crop,
        prepare=case.prepare,
        options=dict(case.options),
        needs=case.needs,
    )


@dataclass
class Outcome:
    """What the surface did: ``error`` (class + message) or ``text``; in bulk and the CLI
    ``row_error`` (the kind's row) and ``others`` (the other rows' texts and errors);
    ``exit_code`` / ``stderr`` for the CLI; ``seconds`` it took."""

    text: str | None = None
    error: BaseException | None = None
    row_error: str | None = None
    others: list[tuple[str | None, str | None]] = field(default_factory=list)
    exit_code: int | None = None
    stderr: str = ""
    seconds: float = 0.0
    shown: str = ""  # the panel's error line / the magic's printed line

    def describe(self) -> str:
        if self.error is not None:
            return f"raised {type(self.error).__name__}: {self.error}"
        if self.exit_code is not None and self.exit_code not in (0, 1):
            return f"exit {self.exit_code}: {self.stderr.strip()[-300:]}"
        if self.row_error is not None:
            return f"row error: {self.row_error} (others: {self.others})"
        return f"ok: {self.text!r} (others: {self.others}) exit={self.exit_code}"


def creds(server: Any, kind: Kind) -> dict[str, Any]:
    key = server.app_key if kind.app_key is None else kind.app_key.format(key=server.app_key)
    return {"app_id": server.app_id, "app_key": key, "base_url": server.url}


def env_for(server: Any, kind: Kind) -> dict[str, str]:
    """The environment an env-driven surface (bulk without a client, CLI, panel) reads."""
    c = creds(server, kind)
    return {
        "MATHPIX_APP_ID": c["app_id"],
        "MATHPIX_APP_KEY": c["app_key"],
        "MATHPIX_URL": c["base_url"],
    }


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _timed(fn: Callable[[], Outcome]) -> Outcome:
    start = time.monotonic()
    try:
        out = fn()
    except Exception as exc:
        out = Outcome(error=exc)
    out.seconds = time.monotonic() - start
    return out


def _call_kwargs(kind: Kind) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(kind.options)
    if kind.crop is not None:
        kwargs["crop"] = kind.crop
    if kind.prepare is not None:
        kwargs["prepare"] = kind.prepare
    return kwargs


# -- client ---------------------------------------------------------------------------------
def run_client(server: Any, kind: Kind, image: Any) -> Outcome:
    from mathpix_nb import Mathpix

    def go() -> Outcome:
        with Mathpix(**creds(server, kind), **kind.client) as client:
            return Outcome(text=client.text(image, **_call_kwargs(kind)).text)

    return _timed(go)


async def run_async_client(server: Any, kind: Kind, image: Any) -> Outcome:
    from mathpix_nb import AsyncMathpix

    start = time.monotonic()
    try:
        async with AsyncMathpix(**creds(server, kind), **kind.client) as client:
            out = Outcome(text=(await client.text(image, **_call_kwargs(kind))).text)
    except Exception as exc:
        out = Outcome(error=exc)
    out.seconds = time.monotonic() - start
    return out


# -- bulk -----------------------------------------------------------------------------------
def run_bulk(server: Any, kind: Kind, image: Any, tmp: Path) -> Outcome:
    """``ocr_frame`` over [good, kind, good] with the client from the environment."""
    import pandas as pd

    from mathpix_nb.bulk import ocr_frame

    def go() -> Outcome:
        df = pd.DataFrame({"image": [GOOD, image, GOOD2]})
        kwargs = _call_kwargs(kind)
        kwargs.update(kind.client)  # a bulk run's own settings (timeout=...) are checked too
        with environ(env_for(server, kind)):
            out = ocr_frame(
                df, "image", journal=False, progress=False, poll_interval=0.05, **kwargs
            )
        rows = list(zip(out["ocr_text"], out["ocr_error"], strict=True))
        return Outcome(text=rows[1][0], row_error=rows[1][1], others=[rows[0], rows[2]])

    return _timed(go)


# -- CLI ------------------------------------------------------------------------------------
def cli(server: Any, kind: Kind, args: list[str], tmp: Path) -> Outcome:
    """``mathpix-nb ocr ARGS --out out.jsonl`` in a subprocess; the rows by input."""
    out_file = tmp / f"cli-{os.getpid()}-{time.monotonic_ns()}.jsonl"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MATHPIX_") or k == "MATHPIX_NB_HOME"
    }
    env.update(env_for(server, kind))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-m", "mathpix_nb", "ocr", *args, "--out", str(out_file)]
    cmd += ["--no-progress", "--poll-interval", "0.05", "--journal", str(tmp / "cli-journal.db")]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    out = Outcome(exit_code=proc.returncode, stderr=proc.stderr)
    out.seconds = time.monotonic() - start
    if out_file.exists():
        out.others = [
            (row.get("image_path"), row.get("ocr_error") or row.get("ocr_text"))  # type: ignore[misc]
            for row in map(json.loads, out_file.read_text().splitlines())
        ]
    return out


def cli_arg(value: Any) -> str | None:
    """The command-line form of an input, or None if the CLI cannot take it."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    return None


# -- RAG ------------------------------------------------------------------------------------
def rag_sources(image: Any, tmp: Path) -> list[Any]:
    tmp = tmp.parent / f"{tmp.name}-good"
    tmp.mkdir(exist_ok=True)
    good = tmp / "rag-good.png"
    good.write_bytes(GOOD)
    good2 = tmp / "rag-good2.png"
    good2.write_bytes(GOOD2)
    return [good, image, good2]


def _docs(docs: list[Any], text_of: Callable[[Any], str]) -> Outcome:
    texts = [(text_of(d), d.metadata.get("error")) for d in docs]
    if len(texts) != 3:
        return Outcome(text=f"{len(texts)} documents", others=texts)
    return Outcome(text=texts[1][0] or None, row_error=texts[1][1], others=[texts[0], texts[2]])


def run_loader(server: Any, kind: Kind, image: Any, tmp: Path) -> Outcome:
    from mathpix_nb.langchain import MathpixLoader

    def go() -> Outcome:
        loader = MathpixLoader(
            rag_sources(image, tmp),
            on_error="document",
            cache=False,
            options=dict(kind.options) or None,
            **creds(server, kind),
            **kind.client,
        )
        return _docs(loader.load(), lambda d: d.page_content)

    return _timed(go)


def run_reader(server: Any, kind: Kind, image: Any, tmp: Path) -> Outcome:
    from mathpix_nb.llama_index import MathpixReader

    def go() -> Outcome:
        reader = MathpixReader(
            on_error="document",
            cache=False,
            options=dict(kind.options) or None,
            **creds(server, kind),
            **kind.client,
        )
        return _docs(reader.load_data(rag_sources(image, tmp)), lambda d: d.text)

    return _timed(go)


# -- the panel's Python side -----------------------------------------------------------------
def run_panel(server: Any, kind: Kind, image: Any) -> Outcome:
    """``CropPanel(image, **options)`` with the environment's client, crop set from Python,
    then ``panel.ocr()``."""
    from mathpix_nb.jupyter import CropPanel

    shown: list[str] = []

    def go() -> Outcome:
        with environ(env_for(server, kind)):
            panel = CropPanel(**dict(kind.options), **kind.client)
        try:
            try:
                panel.load(image)
                if kind.crop is not None:
                    panel.crop = kind.crop
                return Outcome(text=panel.ocr().text)
            finally:
                shown.append(panel.error)
        finally:
            panel.close()

    out = _timed(go)
    out.shown = "".join(shown)
    return out


# -- the magic ------------------------------------------------------------------------------
def magic_line(kind: Kind, image: Any, tmp: Path) -> str | None:
    """The ``%mathpix`` line for a kind, or None if the magic cannot take it."""
    if kind.options or kind.client or kind.app_key or kind.prepare is not None:
        return None
    source = cli_arg(image)
    if kind.crop is not None:
        if source is None and isinstance(image, bytes):
            path = tmp / "magic-crop.png"
            path.write_bytes(image)
            source = str(path)
        crop = kind.crop
        text = ",".join(map(str, crop)) if isinstance(crop, list | tuple) else str(crop)
        return f"{shlex.quote(source or '')} --client client --crop={shlex.quote(text)}"
    if source is None:
        return None
    return f"{shlex.quote(source)} --client client"


def run_magic(shell: Any, line: str) -> Outcome:
    from IPython.utils.capture import capture_output

    def go() -> Outcome:
        with capture_output() as captured:
            try:
                return Outcome(text=shell.run_line_magic("mathpix", line).text)
            finally:
                shown.append(captured.stdout + captured.stderr)

    shown: list[str] = []
    out = _timed(go)
    out.shown = "".join(shown)
    return out


# -- the kinds ------------------------------------------------------------------------------
def _no_permission(ctx: Ctx) -> Path:
    path = ctx.tmp / "locked.png"
    path.write_bytes(GOOD)
    path.chmod(0)
    return path


_FROM_INPUTS = [
    "png_path_str",
    "png_pathlib",
    "glob_chars_literal",
    "unicode_name",
    "symlink_to_png",
    "missing_file",
    "broken_symlink",
    "empty_path",
    "whitespace_path",
    "nul_in_path",
    "directory",
    "empty_file",
    "truncated_png",
    "text_file",
    "pixel_bomb_header",
    "strip_50000x10",
    "fifo",
    "symlink_to_fifo",
    "dev_zero",
    "unix_socket",
    "bytes",
    "empty_bytes",
    "random_bytes",
    "bytesio",
    "stringio",
    "closed_file",
    "pil_1",
    "pil_L",
    "pil_LA",
    "pil_P",
    "pil_RGBA",
    "pil_CMYK",
    "pil_I_16",
    "pil_F",
    "pil_0x0",
    "pil_lazy_truncated",
    "np_uint8_gray",
    "np_uint8_rgb",
    "np_bool",
    "np_uint16",
    "np_float32_unit",
    "np_0x0",
    "np_object",
    "np_str",
    "np_1d",
    "np_channel_first",
    "np_nan",
    "np_complex",
    "http_url",
    "http_url_404",
    "data_uri_png",
    "data_uri_bad_base64",
    "data_uri_text",
    "crop_inf",
    "crop_partly_outside_is_clipped",
    "crop_entirely_outside",
    "crop_string",
    "crop_int_not_iterable",
    "option_set_value",
    "option_typo",
    "option_str_for_list",
    "option_extra_not_json",
]

KINDS: dict[str, Kind] = {k.id: k for k in map(from_inputs, _FROM_INPUTS)}
for _extra in (
    Kind("no_permission", "special", _no_permission, needs=("not_root",)),
    Kind("dict_input", "stream", lambda c: {"path": "a.png"}),
    Kind("region_int", "client", lambda c: GOOD, client={"region": 5}),
    Kind("timeout_str", "client", lambda c: GOOD, client={"timeout": "x"}),
    Kind("key_trailing_newline", "client", lambda c: GOOD, app_key="{key}\n"),
    Kind("key_leading_space", "client", lambda c: GOOD, app_key=" {key}"),
    Kind("key_non_ascii", "client", lambda c: GOOD, app_key="{key}\u00e9"),
):
    KINDS[_extra.id] = _extra
