"""The widgets' front-end modules: the shared part (static/renderer_loader.js) exists once and
is put before each widget's module, so every widget loads the renderer the same way."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("anywidget")

from mathpix_nb.jupyter import _assets

MODULES = ("widgets.js", "review.js", "ink.js")
SHARED = ("el", "button", "bytesOf", "runRenderer", "loadRenderer", "scrub")


def _defined(text: str) -> list[str]:
    return re.findall(r"^(?:async )?function (\w+)\(", text, re.M)


def test_the_shared_functions_are_defined_once_in_the_loader() -> None:
    loader = _defined(_assets.LOADER.read_text(encoding="utf-8"))
    assert sorted(loader) == sorted(SHARED)
    for name in MODULES:
        own = _defined((_assets.STATIC / name).read_text(encoding="utf-8"))
        assert not set(own) & set(SHARED), (
            f"{name} defines its own copy of {set(own) & set(SHARED)}"
        )


def test_each_widget_esm_is_the_loader_then_its_module() -> None:
    from mathpix_nb.jupyter import CropPanel, InkPad, ResultView, Review

    loader = _assets.LOADER.read_text(encoding="utf-8")
    for cls, name in [
        (ResultView, "widgets.js"),
        (CropPanel, "widgets.js"),
        (Review, "review.js"),
        (InkPad, "ink.js"),
    ]:
        esm = cls._esm
        assert isinstance(esm, str) and esm.startswith(loader), cls.__name__
        assert esm.endswith((_assets.STATIC / name).read_text(encoding="utf-8"))
        assert esm.count("export default") == 1
        assert sorted(n for n in _defined(esm) if n in SHARED) == sorted(SHARED)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to parse the modules")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MODULES)
def test_each_esm_parses_as_an_es_module(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.mjs"
    path.write_text(_assets.esm(name), encoding="utf-8")
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
