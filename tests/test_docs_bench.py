"""The benchmarks page is rendered from bench/results/*.json by the docs hook, and a rendered
notebook holding a credential fails the docs build: both checked on the hook's functions
(no mkdocs build)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(30)


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts/mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _sample() -> dict[str, Any]:
    return {
        "schema": 1,
        "script": "bench/sample.py",
        "argv": ["--images", "4"],
        "args": {"images": 4},
        "machine": {
            "date": "2026-12-02 18:00 UTC",
            "commit": "abc1234def",
            "dirty": False,
            "cores": 2,
            "cpu": "Test CPU",
            "python": "3.11.7",
            "load_avg": 1.5,
        },
        "setup": "4 images, 0.2 s each",
        "tables": [
            {
                "title": "Runs",
                "columns": [
                    {"key": "path", "label": "path", "fmt": "s"},
                    {"key": "wall", "label": "wall s", "fmt": ".2f"},
                    {"key": "requests", "label": "requests", "fmt": "d"},
                ],
                "rows": [
                    {"path": "batch | polled", "wall": 1.8349, "requests": 18},
                    {"path": "floor", "wall": 1.5, "requests": None},
                ],
            }
        ],
        "targets": [{"text": "overhead 3.1 ms (≤ 5)", "met": True}, {"text": "x", "met": False}],
        "notes": ["ours sends 19.7x fewer bytes"],
    }


def test_a_marker_becomes_the_table_with_where_and_when(tmp_path: Path) -> None:
    (tmp_path / "sample.json").write_text(json.dumps(_sample()))
    page = "# B\n\nbefore\n\n<!-- bench: sample -->\n\nafter\n"
    out = hooks.render_bench(page, tmp_path)
    assert "<!--" not in out and "before" in out and "after" in out
    assert "| path | wall s | requests |" in out
    assert "|---|---:|---:|" in out
    assert "| batch \\| polled | 1.83 | 18 |" in out  # a pipe in a cell does not split it
    assert "| floor | 1.50 | – |" in out
    assert "2026-12-02 18:00 UTC" in out and "`abc1234def`" in out and "2 cores" in out
    assert "`python bench/sample.py --images 4`" in out
    assert "- met: overhead 3.1 ms (≤ 5)" in out and "- **missed**: x" in out
    assert "- ours sends 19.7x fewer bytes" in out


def test_no_results_file_says_not_measured_and_quick_mode_is_the_fallback(
    tmp_path: Path,
) -> None:
    out = hooks.render_bench("<!-- bench: sample -->", tmp_path)
    assert hooks.NOT_MEASURED in out and "|" not in out
    quick = _sample() | {"argv": ["--quick"]}
    (tmp_path / "sample-quick.json").write_text(json.dumps(quick))
    out = hooks.render_bench("<!-- bench: sample -->", tmp_path)
    assert hooks.NOT_MEASURED not in out and "bench/results/sample-quick.json" in out


def test_a_broken_results_file_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "sample.json").write_text('{"machine": {}}')
    with pytest.raises(hooks.PluginError):
        hooks.render_bench("<!-- bench: sample -->", tmp_path)


def test_every_marker_of_the_benchmarks_page_renders() -> None:
    page = (ROOT / "docs/benchmarks.md").read_text()
    markers = hooks.bench_markers(page)
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_")}
    assert set(markers) == scripts  # one section per bench script, no marker without one
    for name in markers:
        section = hooks.bench_section(name)
        if hooks.results_file(name) is None:
            assert hooks.NOT_MEASURED in section
        else:
            assert "\n| " in section and "Measured " in section, name
    assert hooks.BENCH_MARKER.search(hooks.render_bench(page)) is None


def test_credential_shapes_in_a_rendered_notebook_are_found() -> None:
    clean = "<pre>app_key=server.app_key  # 10 rows - 7 done, token_abc</pre>"
    assert hooks.secret_shapes(clean, environ={}) == []
    token = "<pre>{&#x27;app_token&#x27;: &#x27;token_" + "0123456789abcdef" * 2 + "&#x27;}</pre>"
    assert "Mathpix app token" in hooks.secret_shapes(token, environ={})
    key = "<pre>{&quot;app_key&quot;: &quot;" + "k" * 32 + "&quot;}</pre>"
    assert hooks.secret_shapes(key, environ={}) == ["app_key value"]
    env = {"SOME_API_KEY": "s3cr3t-value-42", "HOME": "/root/somewhere"}
    leaked = "<pre>s3cr3t-value-42 in /root/somewhere</pre>"
    assert hooks.secret_shapes(leaked, environ=env) == ["the value of $SOME_API_KEY"]
