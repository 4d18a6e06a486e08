"""mkdocs hooks (see mkdocs.yml): the notebooks and the changelog, which live outside docs/.

The notebooks stay in notebooks/ (the tests execute them there) and CHANGELOG.md at the top;
the site shows them as notebooks/*.ipynb (rendered by mkdocs-jupyter) and changelog.md. They
are rendered from a temporary copy, so executing them (MATHPIX_NB_DOCS_EXECUTE=true) leaves
the files they write out of the checkout. A guide links a notebook as
``../notebooks/x.ipynb`` (right on GitHub); on the site that link points at the rendered page.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
_NOTEBOOK_LINK = re.compile(r"\]\(\.\./notebooks/")
_COPIES: list[str] = []


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
    return markdown


def on_post_build(config: Any) -> None:
    while _COPIES:
        shutil.rmtree(_COPIES.pop(), ignore_errors=True)


def on_build_error(error: Exception) -> None:
    on_post_build(None)
