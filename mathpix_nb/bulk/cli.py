"""The shell surface: ``mathpix-nb ocr`` (one image, or many into a table) and ``mathpix-nb pdf``.

    mathpix-nb ocr page.png                      # its Mathpix Markdown on stdout
    mathpix-nb ocr page.png --format latex       # or html, json; --json for machine output
    cat page.png | mathpix-nb ocr -              # an image on stdin
    mathpix-nb ocr 'scans/**/*.png' --out results.csv
    mathpix-nb ocr images.csv --column image_path --out results.parquet
    mathpix-nb pdf paper.pdf -o paper.docx       # .mmd .md .docx .tex.zip .html ...
    mathpix-nb pdf --resume PDF_ID -o paper.mmd  # a PDF submitted earlier

Credentials come from the environment (``MATHPIX_APP_ID``/``MATHPIX_APP_KEY``, an app token,
a token URL or a team proxy; ``MATHPIX_URL``/``MATHPIX_REGION`` pick the host). A rerun of a
table with the same inputs resumes from the journal (``--journal``, default
``$MATHPIX_NB_HOME/journal.sqlite3``).

Exit status, for every command: 0 all rows / pages answered, 1 some rows or pages failed (see
the ``ocr_error`` column), 2 bad usage (checked before any OCR starts).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sqlite3
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".jsonl", ".json"}
_OUT_SUFFIXES = {".csv", ".parquet", ".jsonl"}
_REMOTE = ("http://", "https://", "data:")
_GLOB_CHARS = "*?["
# what --format prints for one image, and the v3/text format it needs
_SINGLE_FORMATS = {"mmd": "text", "latex": "latex_styled", "html": "html", "json": None}
# -o suffix -> the v3/pdf output (longest suffixes first)
_PDF_OUTPUTS = {
    ".lines.mmd.json": "lines.mmd.json",
    ".lines.json": "lines.json",
    ".mmd.zip": "mmd.zip",
    ".md.zip": "md.zip",
    ".html.zip": "html.zip",
    ".tex.zip": "tex.zip",
    ".latex.pdf": "latex.pdf",
    ".mmd": "mmd",
    ".md": "md",
    ".docx": "docx",
    ".html": "html",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".pdf": "pdf",
}
_TEXT_OUTPUTS = {"mmd", "md", "html", "lines.json", "lines.mmd.json"}

_CREDENTIALS_HELP = (
    "no Mathpix credentials. Set MATHPIX_APP_ID and MATHPIX_APP_KEY (keys from "
    "https://console.mathpix.com), or MATHPIX_APP_TOKEN, or MATHPIX_TOKEN_URL (with "
    "MATHPIX_TOKEN_AUTH), or MATHPIX_PROXY_URL and MATHPIX_PROXY_AUTH for your team's proxy. "
    "Without an account: run `mathpix-nb serve` in another shell and export the MATHPIX_URL, "
    "MATHPIX_APP_ID and MATHPIX_APP_KEY it prints."
)
# Python keyword advice in the core's messages, said the shell's way
_SHELL_WORDS = {
    "app_id": "MATHPIX_APP_ID",
    "app_key": "MATHPIX_APP_KEY",
    "app_token": "MATHPIX_APP_TOKEN",
    "token_url": "MATHPIX_TOKEN_URL",
    "token_auth": "MATHPIX_TOKEN_AUTH",
    "proxy_url": "MATHPIX_PROXY_URL",
    "proxy_auth": "MATHPIX_PROXY_AUTH",
    "base_url": "MATHPIX_URL",
    "region": "MATHPIX_REGION",
    "timeout": "--timeout",
    "poll_interval": "--poll-interval",
    "journal": "--journal",
    "concurrency": "--concurrency",
    "prefix": "--prefix",
    "unknown_grace": "--unknown-grace",
    "dataset": "--dataset",
    "extra_options": "--option",
}
_SHELL_RE = re.compile(r"\b(" + "|".join(_SHELL_WORDS) + r")=(?:\{\.\.\.\}|<[^>]*>)?")


class UsageError(Exception):
    """Bad usage found before any OCR: printed as ``PROG: message``, exit status 2."""


def shell_message(text: str) -> str:
    """A core message with its Python keyword advice (``base_url=``) in shell words."""
    if "Pass app_id=" in text and "MATHPIX_APP_ID" in text:
        return _CREDENTIALS_HELP
    return _SHELL_RE.sub(lambda m: _SHELL_WORDS[m.group(1)], text)


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)


def _check_credentials() -> None:
    """Resolve the credentials now, so a missing one is bad usage before any OCR."""
    from .._config import resolve_settings
    from .._exceptions import ConfigurationError

    try:
        resolve_settings()
    except ConfigurationError as exc:
        raise UsageError(shell_message(str(exc))) from None


def _need(module: str, hint: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{hint} needs {module!r}, which is not installed. {_install(module)}"
        ) from None


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _install(module: str) -> str:
    extra = {"pandas": "pandas", "tqdm": "pandas"}.get(module)
    if extra:
        return f"Install it with: pip install 'mathpix_nb[{extra}]'"
    return f"Install it with: pip install {module}"


def _seconds(name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{name} must be a finite number of seconds, got {value}")
    if value < 0 or (value == 0 and not zero_ok):
        raise UsageError(f"{name} must be {'>= 0' if zero_ok else '> 0'} seconds, got {value:g}")


def _parse_options(items: Sequence[str], what: str, td: type) -> dict[str, Any]:
    """``--option KEY=JSON`` values, checked against the endpoint's typed options."""
    from .._exceptions import MathpixError
    from .._options import check_options

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--option expects KEY=JSON (e.g. rm_spaces=false), got {item!r}")
        if key in ("async", "tags"):
            raise UsageError(
                f"--option {key}=... is set by mathpix-nb itself (async jobs tagged per run and "
                "row); remove it"
            )
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    try:
        check_options(td, options, what=what)
    except MathpixError as exc:
        text = str(exc).replace("got an unexpected keyword argument", "got an unknown option")
        text = text.replace(" Options the API added later go in extra_options={...}.", "")
        raise UsageError(shell_message(text)) from None
    return options


def _bounded_stdin(limit: int) -> bytes:
    """The image piped on stdin, at most ``limit`` bytes (never a terminal, never unbounded)."""
    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None or sys.stdin.isatty():
        raise UsageError("'-' reads an image from stdin; pipe one in: mathpix-nb ocr - < page.png")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UsageError(
                f"the image on stdin is larger than {limit // 1_000_000} MB; pass a smaller image"
            )
    if not total:
        raise UsageError("stdin was empty: pipe an image in, e.g. mathpix-nb ocr - < page.png")
    return b"".join(chunks)


# -- mathpix-nb ocr --------------------------------------------------------------------------


def _ocr_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mathpix-nb ocr",
        description="OCR images with Mathpix v3/text. One image: its Mathpix Markdown on "
        "stdout (--format for LaTeX, HTML or the JSON answer; '-' reads the image from stdin). "
        "Several images, globs or a CSV/Parquet/JSONL table: a results table (CSV on stdout, or "
        "--out FILE), through resumable async jobs. Exit status: 0 ok, 1 some images failed, "
        "2 bad usage.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE",
        help="image paths ('-' for stdin), globs (quote them; ** recurses; a file whose name "
        "has glob characters is taken literally), URLs, or a .csv/.tsv/.parquet/.jsonl table "
        "whose --column names the images",
    )
    p.add_argument(
        "--format",
        choices=sorted(_SINGLE_FORMATS),
        default=None,
        help="what to print for one image: mmd (Mathpix Markdown, default), latex, html, json",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="machine output: one image's whole answer as JSON; a table as JSON Lines",
    )
    p.add_argument(
        "--column",
        default=None,
        help="column of the table holding image paths/URLs (default: image_path, "
        "or the table's only column)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="results file: .csv, .parquet or .jsonl, or '-' / /dev/stdout (default: CSV on "
        "stdout)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="images in flight (default 8)")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between v3/ocr-results polls (default 1)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="deadline for the whole run in seconds (default none)",
    )
    p.add_argument(
        "--unknown-grace",
        type=float,
        default=10.0,
        help="seconds a submission whose reply was lost may take to appear in "
        "v3/ocr-results before it is sent again (default 10)",
    )
    p.add_argument(
        "--journal", default=None, help="journal file (default $MATHPIX_NB_HOME/journal.sqlite3)"
    )
    p.add_argument(
        "--dataset",
        default="default",
        help="name the jobs are recorded under at Mathpix: a rerun whose journal is lost reads "
        "the dataset's accepted jobs back from v3/ocr-results instead of paying again "
        "(default: default)",
    )
    p.add_argument(
        "--no-recover",
        action="store_true",
        help="do not read the dataset's jobs back from v3/ocr-results",
    )
    p.add_argument("--prefix", default="ocr_", help="result column prefix (default ocr_)")
    p.add_argument(
        "--formats",
        default=None,
        help="comma-separated v3/text formats (default text,latex_styled); html and data add "
        "the columns ocr_html and ocr_data (JSON text)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra v3/text option, e.g. --option rm_spaces=false (repeatable)",
    )
    p.add_argument(
        "--no-improve-mathpix",
        action="store_true",
        help="send metadata.improve_mathpix=false (uses synchronous requests)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _is_remote(arg: str) -> bool:
    return arg.lower().startswith(_REMOTE)


def _is_glob(arg: str) -> bool:
    """A pattern to expand: has glob characters and is not itself an existing name."""
    return any(ch in arg for ch in _GLOB_CHARS) and not os.path.lexists(os.path.expanduser(arg))


def _is_table(arg: str) -> bool:
    return Path(arg).suffix.lower() in _TABLE_SUFFIXES and Path(arg).is_file()


def _expand(arg: str) -> list[str]:
    if arg == "-" or _is_remote(arg) or not _is_glob(arg):
        return [arg]
    return sorted(glob.glob(os.path.expanduser(arg), recursive=True))


def _read_table(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path)
        elif suffix == ".tsv":
            table = pd.read_csv(path, sep="\t")
        elif suffix == ".parquet":
            _need("pyarrow", f"reading {path}")
            table = pd.read_parquet(path)
        else:
            table = pd.read_json(path, lines=suffix == ".jsonl")
    except UsageError:
        raise
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty: no header and no rows") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UsageError(f"cannot read the table {path}: {exc}") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: a file we cannot parse
        raise UsageError(f"cannot read the table {path}: {type(exc).__name__}: {exc}") from None
    if len(table) == 0:
        raise UsageError(f"{path} has no rows (columns: {list(table.columns)})")
    return table


def _build_frame(inputs: Sequence[str], column: str | None) -> tuple[Any, str]:
    import pandas as pd

    frames: list[Any] = []
    loose: list[str] = []
    for arg in inputs:
        if arg == "-":
            raise UsageError("'-' (an image on stdin) works only as the one input")
        if not _is_remote(arg) and _is_table(arg):
            path = Path(arg)
            table = _read_table(path)
            col = column
            if col is None:
                col = (
                    "image_path"
                    if "image_path" in table.columns
                    else (table.columns[0] if len(table.columns) == 1 else None)
                )
            if col is None or col not in table.columns:
                raise UsageError(
                    f"{arg} has no column {col or 'image_path'!r} (columns: "
                    f"{list(table.columns)}); pass --column NAME"
                )
            column = col
            frames.append(table)
            continue
        matches = _expand(arg)
        if not matches:
            print(f"mathpix-nb ocr: warning: {arg!r} matched no files", file=sys.stderr)
        loose.extend(matches)
    column = column or "image_path"
    if loose:
        frames.append(pd.DataFrame({column: loose}))
    if not frames:
        raise UsageError("no inputs to process (the globs matched nothing)")
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df, column


class _Out:
    """Where the results table goes, checked before any OCR."""

    def __init__(self, out: str | None, as_json: bool) -> None:
        self.path: Path | None = None  # None: stdout
        self.stream_path: Path | None = None  # a device or pipe (/dev/stdout, a FIFO)
        self.kind = ".jsonl" if as_json else ".csv"
        if out is None or out == "-":
            return
        path = Path(out).expanduser()
        suffix = path.suffix.lower()
        if path.is_dir():
            raise UsageError(
                f"--out {out} is a directory; name a file, e.g. {path / 'results.csv'}"
            )
        if path.exists() and not path.is_file():  # /dev/stdout, a FIFO, a terminal
            if suffix == ".parquet":
                raise UsageError(f"--out {out}: Parquet needs a regular file")
            self.stream_path = path
            self.kind = suffix if suffix in _OUT_SUFFIXES else self.kind
            return
        if suffix not in _OUT_SUFFIXES:
            raise UsageError(f"--out must end in .csv, .parquet or .jsonl, got {out!r}")
        if suffix == ".parquet" and not any(_importable(m) for m in ("pyarrow", "fastparquet")):
            raise UsageError(
                f"--out {out} needs pyarrow to write Parquet. Install it with: "
                "pip install pyarrow (or use --out results.csv / .jsonl)"
            )
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"--out {out}: {parent} is not a directory")
        target = path if path.exists() else parent
        if not os.access(target, os.W_OK):
            raise UsageError(f"--out {out}: {target} is not writable")
        self.path, self.kind = path, suffix

    def write(self, df: Any) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                if self.kind == ".parquet":
                    df.to_parquet(tmp, index=False)
                else:
                    with open(tmp, "w", encoding="utf-8", newline="") as fh:
                        self._write_text(df, fh)
                os.replace(tmp, self.path)
            finally:
                if tmp.exists():
                    tmp.unlink()
            return
        if self.stream_path is not None:
            with open(self.stream_path, "w", encoding="utf-8", newline="") as fh:
                self._write_text(df, fh)
            return
        self._write_text(df, sys.stdout)
        sys.stdout.flush()

    def _write_text(self, df: Any, fh: IO[str]) -> None:
        if self.kind == ".jsonl":
            text = df.to_json(orient="records", lines=True, force_ascii=False)
            fh.write(text if not text or text.endswith("\n") else text + "\n")
        else:
            df.to_csv(fh, index=False)


def _open_journal(path: str | None, *, only_record: bool = False) -> Any:
    """The run's journal, opened (and its table read) now: a bad file is bad usage. A damaged
    one is set aside and replaced (Mathpix's v3/ocr-results refills it), except when it is
    the only record of the results (``--no-improve-mathpix``)."""
    from .._journal import Journal, default_journal_path

    where = path or str(default_journal_path())
    if path is not None and Path(path).is_dir():
        raise UsageError(f"--journal {path} is a directory; name a file, e.g. {path}/j.sqlite3")
    journal = None
    try:
        journal = Journal(path) if only_record else Journal.open_or_set_aside(path)
        journal.counts()
    except (sqlite3.Error, OSError) as exc:
        if journal is not None:
            journal.close()
        raise UsageError(
            f"cannot use the journal {where}: {exc}. It is not a readable mathpix-nb journal: "
            "move it away (a new one is started) or pass --journal with another file"
        ) from None
    return journal


def _single(args: argparse.Namespace, image: str) -> int:
    """One image: print its Mathpix Markdown (or --format) on stdout."""
    from .._client import Mathpix
    from .._exceptions import ConfigurationError, MathpixError
    from .._image_io import DEFAULT_MAX_FILE_BYTES
    from .._options import TextOptions

    prog = "mathpix-nb ocr"
    fmt = "json" if args.json and args.format is None else (args.format or "mmd")
    options = _parse_options(args.option, "--option", TextOptions)
    formats = [f.strip() for f in (args.formats or "").split(",") if f.strip()]
    needed = _SINGLE_FORMATS[fmt]
    if not formats:
        formats = ["text"] if needed is None else [needed]
    elif needed is not None and needed not in formats:
        formats.append(needed)
    options["formats"] = formats
    if args.no_improve_mathpix:
        options["improve_mathpix"] = False
    _check_credentials()
    source: str | bytes = _bounded_stdin(DEFAULT_MAX_FILE_BYTES) if image == "-" else image
    label = "<stdin>" if image == "-" else image
    try:
        client = Mathpix(timeout=args.timeout) if args.timeout else Mathpix()
    except ConfigurationError as exc:
        raise UsageError(shell_message(str(exc))) from None
    with client:
        try:
            result = client.text(source, **options)
        except MathpixError as exc:
            message = shell_message(client.redact(str(exc)))
            if args.json:
                error = {"id": getattr(exc, "error_id", None) or type(exc).__name__}
                error["message"] = message
                print(json.dumps({"source": label, "error": error}, ensure_ascii=False))
            _fail(prog, message)
            return EXIT_USAGE if isinstance(exc, ConfigurationError) or exc.fatal else EXIT_FAILED
    if fmt == "json":
        print(json.dumps(result.raw, ensure_ascii=False, indent=None if args.json else 2))
        return EXIT_OK
    value = {"mmd": result.text, "latex": result.latex_styled, "html": result.html}[fmt]
    if value is None:
        _fail(
            prog,
            f"Mathpix returned no {needed} for {label} (latex_styled comes only for an image "
            "of one equation); use --format mmd",
        )
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"source": label, fmt: value}, ensure_ascii=False))
    else:
        sys.stdout.write(value if value.endswith("\n") else value + "\n")
    return EXIT_OK


def _check_common(args: argparse.Namespace) -> None:
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
    _seconds("--poll-interval", args.poll_interval)
    _seconds("--timeout", args.timeout)
    _seconds("--unknown-grace", args.unknown_grace, zero_ok=True)


def _table(args: argparse.Namespace) -> int:
    """Several images or a table: a results table."""
    prog = "mathpix-nb ocr"
    if args.format is not None:
        raise UsageError(
            "--format prints one image; with several the results are a table (CSV, or --json "
            "for JSON Lines, or --out FILE)"
        )
    _need("pandas", "OCR of several images into a table")
    from .._options import TextOptions

    options = _parse_options(args.option, "--option", TextOptions)
    if args.formats:
        options["formats"] = [f.strip() for f in args.formats.split(",") if f.strip()]
    out = _Out(args.out, args.json)
    df, column = _build_frame(args.inputs, args.column)
    if not args.no_progress:
        _need("tqdm", "the progress bar (or pass --no-progress)")
    _check_credentials()
    journal = _open_journal(args.journal, only_record=args.no_improve_mathpix)

    from .._exceptions import AuthenticationError, ConfigurationError, MathpixError
    from ._frame import ocr_frame

    try:
        result = ocr_frame(
            df,
            column,
            options=options,
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
            timeout=args.timeout,
            journal=journal,
            unknown_grace=args.unknown_grace,
            dataset=args.dataset,
            recover=not args.no_recover,
            prefix=args.prefix,
            progress=False if args.no_progress else "stderr",
            improve_mathpix=False if args.no_improve_mathpix else None,
        )
    except (ConfigurationError, AuthenticationError) as exc:
        _fail(prog, shell_message(str(exc)))
        return EXIT_USAGE
    except MathpixError as exc:
        _fail(prog, shell_message(str(exc)))
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as exc:
        _fail(prog, f"the run stopped: {exc}")
        return EXIT_FAILED
    finally:
        journal.close()
    try:
        out.write(result)
    except OSError as exc:
        _fail(prog, f"cannot write the results to {args.out or 'stdout'}: {exc}")
        return EXIT_FAILED
    summary = result.attrs.get("mathpix_summary")
    if summary is not None:
        from ._engine import BulkSummary

        print(BulkSummary(**summary), file=sys.stderr)
    failed = int(result[args.prefix + "error"].notna().sum())
    return EXIT_FAILED if failed else EXIT_OK


def ocr_main(argv: Sequence[str]) -> int:
    """``mathpix-nb ocr``: returns the exit status."""
    parser = _ocr_parser()
    args = parser.parse_args(list(argv))
    prog = parser.prog
    if args.out not in (None, "-"):
        path = Path(args.out).expanduser()
        if not path.exists() and path.suffix.lower() not in _OUT_SUFFIXES:
            parser.error(f"--out must end in .csv, .parquet or .jsonl, got {args.out!r}")
    try:
        _check_common(args)
        inputs = list(args.inputs)
        one = inputs[0]
        single = (
            len(inputs) == 1
            and args.out is None
            and args.column is None
            and (one == "-" or _is_remote(one) or not (_is_glob(one) or _is_table(one)))
        )
        return _single(args, one) if single else _table(args)
    except UsageError as exc:
        _fail(prog, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail(prog, "interrupted (a rerun resumes from the journal)")
        return 130


main = ocr_main


# -- mathpix-nb pdf --------------------------------------------------------------------------


def _pdf_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mathpix-nb pdf",
        description="Convert a PDF with Mathpix v3/pdf into Mathpix Markdown, Markdown, DOCX, "
        "LaTeX (.tex.zip), HTML... with a progress bar of the pages done on stderr. The PDF id is "
        "printed first: --resume PDF_ID picks a submitted PDF up again. Exit status: 0 ok, "
        "1 the PDF or its conversion failed, 2 bad usage.",
    )
    p.add_argument("file", nargs="?", metavar="FILE.pdf", help="the PDF (a path or an URL)")
    p.add_argument(
        "-o",
        "--out",
        default=None,
        help="output file; its suffix picks the format: "
        + ", ".join(sorted(_PDF_OUTPUTS))
        + " (default: Mathpix Markdown on stdout)",
    )
    p.add_argument("--resume", metavar="PDF_ID", default=None, help="a PDF submitted before")
    p.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between status checks (1)"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the result (600)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="v3/pdf option, e.g. --option page_ranges='\"1-3\"' (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="a JSON summary on stdout at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _pdf_output(out: str | None) -> str:
    if out is None or out == "-":
        return "mmd"
    name = out.lower()
    for suffix, ext in _PDF_OUTPUTS.items():
        if name.endswith(suffix):
            return ext
    raise UsageError(
        f"-o {out}: the suffix picks the format; use one of {', '.join(sorted(_PDF_OUTPUTS))}"
    )


class _Progress:
    """``pages done / total`` on stderr: one redrawn line on a terminal, else a line a change."""

    def __init__(self, enabled: bool, pdf_id: str) -> None:
        self.enabled, self.pdf_id = enabled, pdf_id
        self.tty = sys.stderr.isatty()
        self.last: tuple[Any, ...] | None = None

    def update(self, status: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done, total = status.get("num_pages_completed"), status.get("num_pages")
        state = str(status.get("status") or "?")
        key = (state, done, total)
        if key == self.last:
            return
        self.last = key
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            width = 24
            filled = min(width, width * done // total)
            bar = "#" * filled + "." * (width - filled)
            line = f"{self.pdf_id} [{bar}] {done}/{total} pages ({state})"
        else:
            line = f"{self.pdf_id} {state}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _pdf_source(arg: str) -> str:
    if _is_remote(arg):
        if arg.lower().startswith("data:"):
            raise UsageError("a PDF is a path or an http(s) URL, not a data: URI")
        return arg
    path = Path(arg).expanduser()
    if not path.exists():
        raise UsageError(f"{arg}: no such file")
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise UsageError(f"{arg} is a directory; pass a PDF file")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{arg} is not a regular file (a device, FIFO or socket)")
    return str(path)


def _resume_hint(pdf_id: str, out: str | None) -> str:
    target = f" -o {out}" if out else ""
    return f"mathpix-nb pdf --resume {pdf_id}{target}"


def pdf_main(argv: Sequence[str]) -> int:
    """``mathpix-nb pdf``: returns the exit status."""
    parser = _pdf_parser()
    args = parser.parse_args(list(argv))
    prog = parser.prog
    try:
        return _pdf(args)
    except UsageError as exc:
        _fail(prog, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail(prog, "interrupted")
        return 130


def _pdf(args: argparse.Namespace) -> int:
    from .._client import Mathpix
    from .._exceptions import APIError, ConfigurationError, MathpixError, PdfError
    from .._options import PdfOptions

    prog = "mathpix-nb pdf"
    if (args.file is None) == (args.resume is None):
        raise UsageError("pass FILE.pdf to convert, or --resume PDF_ID (one of the two)")
    to_file = args.out not in (None, "-")
    if to_file and Path(args.out).expanduser().is_dir():
        raise UsageError(f"-o {args.out} is a directory; name a file, e.g. -o paper.mmd")
    ext = _pdf_output(args.out)
    if not to_file and ext not in _TEXT_OUTPUTS:
        raise UsageError(f"a .{ext} file is binary: write it with -o FILE")
    _seconds("--poll-interval", args.poll_interval)
    _seconds("--timeout", args.timeout)
    options = _parse_options(args.option, "--option", PdfOptions)
    source = _pdf_source(args.file) if args.file is not None else None
    out_path = Path(args.out).expanduser() if to_file else None
    _check_credentials()
    try:
        client = Mathpix()
    except ConfigurationError as exc:
        raise UsageError(shell_message(str(exc))) from None

    def failed(exc: BaseException, pdf_id: str | None) -> int:
        message = shell_message(client.redact(str(exc)))
        if pdf_id is not None and not isinstance(exc, PdfError):
            message += f" (pick it up again with: {_resume_hint(pdf_id, args.out)})"
        _fail(prog, message)
        if args.json:
            print(json.dumps({"pdf_id": pdf_id, "status": "error", "error": message}))
        fatal = isinstance(exc, ConfigurationError) or getattr(exc, "fatal", False)
        return EXIT_USAGE if fatal else EXIT_FAILED

    with client:
        pdf_id: str | None = args.resume
        try:
            if pdf_id is None:
                assert source is not None
                pdf_id = client.pdf_submit(source, outputs=[ext], **options)
                print(
                    f"{prog}: submitted {args.file} as PDF {pdf_id} (if interrupted, resume with: "
                    f"{_resume_hint(pdf_id, args.out)})",
                    file=sys.stderr,
                )
            else:
                try:
                    client.pdf_status(pdf_id)
                except APIError as exc:
                    raise UsageError(
                        f"--resume {pdf_id}: Mathpix does not know this PDF ({exc})"
                    ) from None
            data, status = _wait_and_download(client, pdf_id, ext, args)
        except UsageError:
            raise
        except MathpixError as exc:
            return failed(exc, pdf_id)
    if out_path is None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        sys.stdout.flush()
    else:
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, out_path)
        except OSError as exc:
            _fail(
                prog,
                f"cannot write {args.out}: {exc} (the result stays at Mathpix: "
                f"{_resume_hint(pdf_id, args.out)})",
            )
            return EXIT_FAILED
        print(f"{prog}: wrote {args.out} ({len(data)} bytes)", file=sys.stderr)
    if args.json:
        summary = {
            "pdf_id": pdf_id,
            "status": "completed",
            "pages": status.get("num_pages"),
            "format": ext,
            "out": args.out,
            "bytes": len(data),
        }
        print(json.dumps(summary))
    return EXIT_OK


def _wait_and_download(
    client: Any, pdf_id: str, ext: str, args: argparse.Namespace
) -> tuple[bytes, dict[str, Any]]:
    """The client's ``pdf_wait`` (it polls; each status draws the pages done) until ``ext``
    is downloaded; its deadline said in shell words."""
    from .._exceptions import PollTimeoutError

    progress = _Progress(not args.no_progress, pdf_id)
    try:
        result = client.pdf_wait(
            pdf_id,
            outputs=[ext],
            poll_interval=args.poll_interval,
            timeout=args.timeout,
            on_status=progress.update,
        )
    except PollTimeoutError:
        raise PollTimeoutError(
            f"PDF {pdf_id} was not ready within --timeout {args.timeout:g} s"
        ) from None
    finally:
        progress.close()
    return result.outputs[ext], result.raw


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
