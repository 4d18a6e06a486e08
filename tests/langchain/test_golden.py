"""Golden Documents: the exact content and metadata a user gets, pinned in JSON.

Ids, hashes and temp paths differ per run, so they are masked before comparing. To rewrite
the golden file after an intended change: ``MNB_REGEN_GOLDEN=1 pytest tests/langchain``
(``test_regen_flag_is_off`` keeps CI from ever doing that silently).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mathpix_nb.langchain import MathpixLoader

REGEN = os.environ.get("MNB_REGEN_GOLDEN", "") not in ("", "0")
GOLDEN = Path(__file__).parent / "data" / "golden_documents.json"
_ID = re.compile(r"\b\d{4}_\d{2}_\d{2}_[0-9a-f]+g\b|\b[0-9a-f]{32}\b")
_SHA = re.compile(r"sha(?::|256=)[0-9a-f]{12}")


def _mask(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        value = value.replace(str(root), "<tmp>")
        value = _SHA.sub("sha:<sha>", value)
        return _ID.sub("<id>", value)
    return value


def test_regen_flag_is_off() -> None:
    assert not REGEN, "MNB_REGEN_GOLDEN is set: unset it, golden files are only rewritten by hand"


def test_documents_match_golden(
    local_server: Any, creds: dict[str, Any], make_image: Any, make_pdf: Any, tmp_path: Path
) -> None:
    img = make_image("golden/page.png", size=(160, 48))
    pdf = make_pdf("golden/paper.pdf", ["one", "two"])
    got = []
    # page mode streams pages (text only); stream=False reads lines.json (with confidences)
    for mode, stream in (("single", None), ("page", None), ("page", False)):
        for fmt in ("mmd", "text"):
            loader = MathpixLoader(
                [img, pdf], mode=mode, output_format=fmt, stream=stream, cache=False, **creds
            )
            for doc in loader.load():
                got.append(
                    {
                        "mode": mode if stream is None else f"{mode}, stream={stream}",
                        "page_content": _mask(doc.page_content, tmp_path),
                        "metadata": {
                            k: _mask(v, tmp_path) for k, v in sorted(doc.metadata.items())
                        },
                    }
                )
    if REGEN:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())
