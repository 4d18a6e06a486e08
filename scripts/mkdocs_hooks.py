"""mkdocs hooks (see mkdocs.yml): the notebooks, the changelog and the bench tables.

The notebooks stay in notebooks/ (the tests execute them there) and CHANGELOG.md at the top;
the site shows them as notebooks/*.ipynb (rendered by mkdocs-jupyter) and changelog.md. They
are rendered from a temporary copy, so executing them (MATHPIX_NB_DOCS_EXECUTE=true) leaves
the files they write out of the checkout. A guide links a notebook as
``../notebooks/x.ipynb`` (right on GitHub); on the site that link points at the rendered page.
A rendered notebook holding something shaped like a credential fails the build.

A page's ``<!-- bench: NAME -->`` becomes the tables of ``bench/results/NAME.json`` (written
by ``bench/NAME.py``; ``NAME-quick.json`` when only the quick mode ran), with the date,
commit and machine of the measurement, so the benchmarks page cannot disagree with the
bench's output; without a results file it says "Not measured in this build".
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
_NOTEBOOK_LINK = re.compile(r"\]\(\.\./notebooks/")
_COPIES: list[str] = []

BENCH_MARKER = re.compile(r"<!--\s*bench:\s*([A-Za-z0-9_-]+)\s*-->")
NOT_MEASURED = "Not measured in this build"

# What a credential looks like in a rendered notebook (checked after HTML unescaping).
SECRET_SHAPES = {
    "Mathpix app token": re.compile(r"token_[0-9a-f]{16,}"),
    "strokes session id": re.compile(r"strokes_[0-9a-f]{16,}"),
    "local server app key": re.compile(r"local-key-[0-9a-f]{8,}"),
    "token-service caller secret": re.compile(r"mnt_[A-Za-z0-9_-]{20,}"),
    "webhook signing secret": re.compile(r"whsec_[A-Za-z0-9_-]{16,}"),
    "app_key value": re.compile(r"app_key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_-]{16,}"),
    "app_token value": re.compile(r"app_token[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_-]{16,}"),
}
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW", re.IGNORECASE)


@event_priority(100)  # before mkdocs-jupyter wraps the .ipynb files
def on_files(files: Files, config: Any) -> Files:
    copy = tempfile.mkdtemp(prefix="mathpix_nb-docs-")
    _COPIES.append(copy)
    (Path(copy) / "notebooks").mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, Path(copy) / "notebooks" / notebook.name)
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=copy,
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    files.append(File.generated(config, "changelog.md", abs_src_path=str(ROOT / "CHANGELOG.md")))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri.count("/") == 0:  # guides at the top of docs/
        markdown = _NOTEBOOK_LINK.sub("](notebooks/", markdown)
    return render_bench(markdown)


def on_post_page(output: str, page: Any, config: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        found = secret_shapes(output)
        if found:  # names only: the values stay out of the log
            raise PluginError(
                f"{page.file.src_uri}: the rendered notebook holds something shaped like a "
                f"credential ({', '.join(found)}); clear that output or fix the notebook"
            )
    return output


def secret_shapes(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The kinds of credential-shaped strings in ``text`` (rendered HTML or plain), and the
    names of environment variables (*KEY*, *TOKEN*, *SECRET*, *PASSW*) whose value it holds."""
    plain = html.unescape(text)
    found = [name for name, shape in SECRET_SHAPES.items() if shape.search(plain)]
    env = os.environ if environ is None else environ
    for name, value in sorted(env.items()):
        if _SECRET_ENV.search(name) and len(value) >= 8 and value in plain:
            found.append(f"the value of ${name}")
    return found


def render_bench(markdown: str, results: Path = RESULTS) -> str:
    """Every ``<!-- bench: NAME -->`` replaced by the tables of its results file."""
    return BENCH_MARKER.sub(lambda m: bench_section(m.group(1), results), markdown)


def bench_markers(markdown: str) -> list[str]:
    return BENCH_MARKER.findall(markdown)


def results_file(name: str, results: Path = RESULTS) -> Path | None:
    """``NAME.json``, else the quick mode's ``NAME-quick.json``, else None."""
    for candidate in (results / f"{name}.json", results / f"{name}-quick.json"):
        if candidate.is_file():
            return candidate
    return None


def bench_section(name: str, results: Path = RESULTS) -> str:
    path = results_file(name, results)
    if path is None:
        return (
            f"*{NOT_MEASURED}: no `bench/results/{name}.json` "
            f"(run `python bench/{name}.py` to measure it).*\n"
        )
    try:
        data = json.loads(path.read_text())
        return _render(data, path.name)
    except (ValueError, KeyError, TypeError) as exc:
        raise PluginError(f"bench/results/{path.name}: not a bench results file ({exc})") from exc


def _render(data: dict[str, Any], filename: str) -> str:
    m = data["machine"]
    command = " ".join(["python", data["script"], *data.get("argv", [])])
    commit = f"`{m['commit']}`" + (" with local changes" if m.get("dirty") else "")
    cores = f"{m['cores']} cores" + (f" ({m['cpu']})" if m.get("cpu") else "")
    load = f", load average {m['load_avg']}" if m.get("load_avg") is not None else ""
    out = [
        f"*Measured {m['date']} at commit {commit} on {cores}, Python {m['python']}"
        f"{load}: `{command}` (`bench/results/{filename}`).*",
        "",
    ]
    if data.get("setup"):
        out += [f"*Set-up*: {_cell(data['setup'])}.", ""]
    for tab in data["tables"]:
        out += [f"**{_cell(tab['title'])}**", "", *_table(tab), ""]
    for note in data.get("notes", []):
        out.append(f"- {_cell(note)}")
    for goal in data.get("targets", []):
        out.append(f"- {'met' if goal['met'] else '**missed**'}: {_cell(goal['text'])}")
    return "\n".join(out).rstrip() + "\n"


def _table(tab: dict[str, Any]) -> list[str]:
    cols = tab["columns"]
    lines = [
        "| " + " | ".join(_cell(c["label"]) for c in cols) + " |",
        "|" + "|".join("---" if c.get("fmt", "s") == "s" else "---:" for c in cols) + "|",
    ]
    for row in tab["rows"]:
        cells = [_format(row.get(c["key"]), c.get("fmt", "s")) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _format(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt != "s" and isinstance(value, (int, float)):
        if fmt.endswith("d"):
            value = round(value)
        return format(value, fmt)
    return _cell(str(value))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def on_post_build(config: Any) -> None:
    while _COPIES:
        shutil.rmtree(_COPIES.pop(), ignore_errors=True)


def on_build_error(error: Exception) -> None:
    on_post_build(None)
