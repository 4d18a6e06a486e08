"""The import boundaries of docs/architecture.md, enforced: surfaces import only the core;
the core imports no surface. Read from the source (ast), so lazy imports inside functions
count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mathpix_nb"
# Surfaces: each may import the core (mathpix_nb._* and the front door's public names).
SURFACES = {
    "bulk",
    "pandas",
    "jupyter",
    "langchain",
    "llama_index",
    "server",
    "tokens",
    "cli",
    "demo",
}
# The dispatcher and the front door may name surfaces (lazily, to dispatch to them).
DISPATCHERS = {"cli", "__init__", "__main__"}
# pandas.py is the bulk surface's accessor: one unit with bulk/.
SAME_UNIT = {"pandas": "bulk"}
# The local server is a peer reached over HTTP: a surface may start one (the offline
# fallback) through its public front door, never through its private modules.
PEER = "mathpix_nb.server"


def _unit(path: Path, root: Path = PACKAGE) -> str:
    """The top-level unit a module belongs to: '_protocol', 'bulk', 'server', ..."""
    unit = path.relative_to(root).with_suffix("").parts[0]
    return SAME_UNIT.get(unit, unit)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every mathpix_nb import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(root).with_suffix("")
    package = ["mathpix_nb", *rel.parts[:-1]]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mathpix_nb")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name.startswith("mathpix_nb"):
                if name == "mathpix_nb" or (node.level and not node.module):
                    found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
                else:
                    found.append((node.lineno, name))
    return found


def _target_unit(module: str) -> str | None:
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else None
    return SAME_UNIT.get(unit, unit) if unit else None


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_import_boundaries(path: Path) -> None:
    unit = _unit(path)
    problems = []
    for line, module in _imports(path):
        target = _target_unit(module)
        if target is None or target == unit:
            continue
        if target in SURFACES:
            if unit in DISPATCHERS or (
                unit in SURFACES and module in (PEER, f"{PEER}.LocalServer")
            ):
                continue
            kind = "the core" if unit not in SURFACES else f"the surface {unit!r}"
            problems.append(f"line {line}: {kind} imports the surface {module}")
    assert not problems, f"{path.relative_to(PACKAGE)}: " + "; ".join(problems)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: relative and absolute imports of another surface are found."""
    root = tmp_path / "mathpix_nb"
    (root / "bulk").mkdir(parents=True)
    bad = root / "bulk" / "probe.py"
    bad.write_text(
        "from ..jupyter import CropPanel\nimport mathpix_nb.server\nfrom .. import _config\n",
        encoding="utf-8",
    )
    imports = _imports(bad, root)
    assert imports == [
        (1, "mathpix_nb.jupyter"),
        (2, "mathpix_nb.server"),
        (3, "mathpix_nb._config"),
    ]
    assert [_target_unit(m) for _, m in imports] == ["jupyter", "server", "_config"]
    assert _unit(bad, root) == "bulk"
