"""What every bench script writes besides its stdout: ``bench/results/<script>.json``.

The docs hook (scripts/mkdocs_hooks.py) renders ``docs/benchmarks.md``'s tables from these
files, so the page shows what the bench measured, on which machine, at which commit. Shape::

    {"schema": 1, "script": "bench/x.py", "argv": [...], "args": {...},
     "machine": {"date", "commit", "dirty", "cores", "affinity", "cpu", "python", "platform",
                 "load_avg"},
     "setup": "one line",
     "tables": [{"title", "columns": [{"key", "label", "fmt"}], "rows": [{key: value}]}],
     "targets": [{"text", "met"}],   # the script's own targets or floors, met or not
     "notes": ["one-line summaries the script prints"],
     "data": {... the raw figures ...}}

``fmt`` is a format spec for numbers (``".2f"``), ``"s"`` for text; None cells show as "–".
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict[str, Any]:
    """Where and when: the figures only mean something next to this."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short=10", "HEAD"),
        # local changes to what is measured (the package, the benches), not to the docs
        "dirty": bool(_git("status", "--porcelain", "--", "mathpix_nb", "bench", "pyproject.toml")),
        "cores": os.cpu_count(),
        "affinity": affinity,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "load_avg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def column(key: str, label: str, fmt: str = "s") -> dict[str, str]:
    return {"key": key, "label": label, "fmt": fmt}


def table(
    title: str, columns: Sequence[dict[str, str]], rows: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    return {"title": title, "columns": list(columns), "rows": [dict(r) for r in rows]}


def target(text: str, met: bool) -> dict[str, Any]:
    return {"text": text, "met": bool(met)}


def write(
    name: str,
    *,
    args: Any,
    setup: str,
    tables: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]] = (),
    notes: Sequence[str] = (),
    data: Any = None,
    machine_info: dict[str, Any] | None = None,
    out: Path | None = None,
) -> Path:
    """Write ``bench/results/<name>.json`` (or ``out``); says where on stderr (stdout is the
    bench's own report)."""
    raw_args = vars(args) if hasattr(args, "__dict__") else dict(args)
    payload = {
        "schema": 1,
        "script": f"bench/{name.removesuffix('-quick')}.py",
        "argv": sys.argv[1:],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in raw_args.items()},
        "machine": machine_info or machine(),
        "setup": setup,
        "tables": list(tables),
        "targets": list(targets),
        "notes": list(notes),
        "data": data,
    }
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path
