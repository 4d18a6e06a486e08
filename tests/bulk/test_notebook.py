"""notebooks/bulk_ocr.ipynb runs end to end in a real Jupyter kernel (nbclient), offline engine.

The kernel's event loop is running while the cells call ``df.mathpix.ocr``: this is the
"works from a Jupyter cell" check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "bulk_ocr.ipynb"


@pytest.mark.slow
def test_bulk_notebook_runs_in_a_kernel_on_the_offline_engine(tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("rapidocr")
    import nbformat

    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError if any cell fails

    def text_of(cell_index: int) -> str:
        parts = []
        for output in nb.cells[cell_index].get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(json.dumps(output.get("data", {})))
        return "\n".join(parts)

    everything = "\n".join(text_of(i) for i in range(len(nb.cells)))
    assert "local offline engine" in everything
    ocr_cell = next(
        i
        for i, c in enumerate(nb.cells)
        if 'df.mathpix.ocr("image_path"' in c.source and "again" not in c.source
    )
    table = text_of(ocr_cell)
    assert "Invoice" in table and "4711" in table  # the offline engine read the rendered text
    assert "file_not_found" in table and "missing_value" in table
    assert "sent again: 0 images" in everything  # the rerun came from the journal
    assert "Traceback" not in everything
