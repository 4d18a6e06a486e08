"""``mathpix-nb ocr``: bulk OCR of image paths, globs or a CSV column into a results file.

    mathpix-nb ocr 'scans/**/*.png' --out results.csv
    mathpix-nb ocr images.csv --column image_path --out results.parquet
    mathpix-nb ocr a.png https://example.com/b.png --out results.jsonl --concurrency 16

Credentials come from the environment (``MATHPIX_APP_ID``/``MATHPIX_APP_KEY``, or an app token,
``MATHPIX_URL``/``MATHPIX_REGION``), as for ``Mathpix()``. A rerun with the same inputs resumes
from the journal (``--journal``, default ``$MATHPIX_NB_HOME/journal.sqlite3``).
Exit status: 0 all rows answered, 1 some rows have an error (see the ``ocr_error`` column),
2 bad usage.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any

_TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".jsonl", ".json"}
_OUT_SUFFIXES = {".csv", ".parquet", ".jsonl"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mathpix-nb ocr",
        description="Bulk OCR of images (paths, globs, URLs, or a column of a CSV/Parquet/JSONL "
        "table) with Mathpix v3/text async jobs; resumable.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PATHS_OR_GLOBS_OR_CSV",
        help="image paths, globs (quote them; ** recurses), URLs, or a .csv/.tsv/"
        ".parquet/.jsonl table whose --column names the images",
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
        help="results file: .csv, .parquet or .jsonl (default: CSV on stdout)",
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
    p.add_argument("--prefix", default="ocr_", help="result column prefix (default ocr_)")
    p.add_argument(
        "--formats",
        default=None,
        help="comma-separated v3/text formats (default text,latex_styled)",
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


def _read_table(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".tsv":
        return pd.read_csv(path, sep="\t")
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=suffix == ".jsonl")


def _expand(arg: str) -> list[str]:
    if arg.lower().startswith(("http://", "https://", "data:")):
        return [arg]
    if any(ch in arg for ch in "*?["):
        return sorted(glob.glob(os.path.expanduser(arg), recursive=True))
    return [arg]


def _build_frame(args: argparse.Namespace) -> tuple[Any, str]:
    import pandas as pd

    frames: list[Any] = []
    column = args.column
    loose: list[str] = []
    for arg in args.inputs:
        path = Path(arg)
        if path.suffix.lower() in _TABLE_SUFFIXES and path.is_file():
            table = _read_table(path)
            col = column
            if col is None:
                col = (
                    "image_path"
                    if "image_path" in table.columns
                    else (table.columns[0] if len(table.columns) == 1 else None)
                )
            if col is None or col not in table.columns:
                raise SystemExit(
                    f"mathpix-nb ocr: {arg} has no column {col or 'image_path'!r} (columns: "
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
        raise SystemExit("mathpix-nb ocr: no inputs to process (globs matched nothing)")
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df, column


def _write(df: Any, out: str | None) -> None:
    if out is None:
        df.to_csv(sys.stdout, index=False)
        return
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in _OUT_SUFFIXES:
        raise SystemExit(f"mathpix-nb ocr: --out must end in .csv, .parquet or .jsonl, got {out!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True, force_ascii=False)


def main(argv: list[str]) -> int:
    """Entry point used by ``mathpix-nb ocr``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is not None and Path(args.out).suffix.lower() not in _OUT_SUFFIXES:
        parser.error(f"--out must end in .csv, .parquet or .jsonl, got {args.out!r}")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    options: dict[str, Any] = {}
    if args.formats:
        options["formats"] = [f.strip() for f in args.formats.split(",") if f.strip()]
    for item in args.option:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            parser.error(f"--option expects KEY=JSON, got {item!r}")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    try:
        df, column = _build_frame(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2

    from mathpix_nb._exceptions import MathpixError

    from ._frame import ocr_frame

    try:
        out = ocr_frame(
            df,
            column,
            options=options,
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
            timeout=args.timeout,
            journal=args.journal,
            unknown_grace=args.unknown_grace,
            prefix=args.prefix,
            progress=False if args.no_progress else "stderr",
            improve_mathpix=False if args.no_improve_mathpix else None,
        )
    except MathpixError as exc:
        print(f"mathpix-nb ocr: {exc}", file=sys.stderr)
        return 2
    _write(out, args.out)
    summary = out.attrs.get("mathpix_summary")
    if summary is not None:
        from ._engine import BulkSummary

        print(BulkSummary(**summary), file=sys.stderr)
    failed = int(out[args.prefix + "error"].notna().sum())
    return 1 if failed else 0
