"""Nothing a user can do with mpxpy 0.0.23 (Mathpix's SDK) is missing here: the checklist in
docs/client.md names every public mpxpy call and a counterpart that exists on both clients;
and mpxpy and our client work on the same jobs of the local server (a conversion, a batch,
app tokens, usage, PDF history), so both read the API the same way."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb import (
    AppToken,
    AsyncMathpix,
    LatexResult,
    Mathpix,
    PdfError,
    TokenError,
)
from mathpix_nb.server import LocalServer

from ._api_support import pdf_bytes
from .conftest import keys, png_bytes, text_image

mpxpy = pytest.importorskip("mpxpy")
from mpxpy.batch import Batch  # noqa: E402
from mpxpy.conversion import Conversion  # noqa: E402
from mpxpy.mathpix_client import MathpixClient  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "client.md"
CLASSES = (
    "MathpixClient",
    "Pdf",
    "Image",
    "Conversion",
    "Batch",
    "File",
    "FileJob",
    "FileSubmission",
    "FileBatch",
    "ScsFile",
    "DataSource",
    "WebhookConfig",
)


def checklist() -> list[tuple[str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Everything mpxpy does, here", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0], cells[1]))
    return rows


def mpxpy_calls() -> set[str]:
    names: set[str] = set()
    for cls_name in CLASSES:
        cls = getattr(mpxpy, cls_name, None) or Batch
        for name, value in vars(cls).items():
            if not name.startswith("_") and (callable(value) or isinstance(value, property)):
                names.add(f"{cls_name}.{name}")
    for name in mpxpy.__all__:
        if inspect.isfunction(getattr(mpxpy, name)):
            names.add(name)
    return names


def test_the_checklist_covers_every_public_mpxpy_call() -> None:
    rows = checklist()
    listed = {n for left, _ in rows for n in re.findall(r"`([A-Za-z_.*]+)", left)}
    wildcards = [n[:-1] for n in listed if n.endswith("*")]
    missing = sorted(
        call
        for call in mpxpy_calls()
        if call not in listed and not any(call.startswith(w) for w in wildcards)
    )
    assert not missing, f"docs/client.md does not say what replaces: {missing}"
    for error in ("MathpixClientError", "ValidationError", "FilesApiError"):
        assert any(error in left for left, _ in rows)


def test_every_counterpart_named_exists_on_both_clients() -> None:
    named = {n for _, right in checklist() for n in re.findall(r"`client\.([a-z_]+)", right)}
    assert len(named) > 30
    for name in sorted(named):
        for cls in (Mathpix, AsyncMathpix):
            assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name} is missing"
    import mathpix_nb

    assert callable(mathpix_nb.verify_webhook)


# -- the same jobs through both clients ---------------------------------------------------------
@pytest.fixture(scope="module")
def shared() -> Any:
    with LocalServer(engine="echo", token_min_expires=1, pdf_step_delay=0.01) as server:
        yield server


@pytest.fixture
def both(shared: Any) -> Any:
    mpx = MathpixClient(app_id=shared.app_id, app_key=shared.app_key, api_url=shared.url)
    with Mathpix(**keys(shared)) as ours:
        yield mpx, ours


def test_a_conversion_is_read_the_same_way(both, shared) -> None:
    mpx, ours = both
    theirs = mpx.conversion_new(mmd="# Hi\n\n\\( x^2 \\)", convert_to_docx=True, convert_to_md=True)
    status = ours.convert_status(theirs.conversion_id)
    assert set(status["conversion_status"]) == {"docx", "md"}
    assert theirs.wait_until_complete(timeout=10)
    assert ours.convert_download(theirs.conversion_id, "md") == theirs.to_md_text().encode()
    mine = ours.convert("# Mine\n", formats=["md", "docx"], poll_interval=0.05)
    again = Conversion(auth=mpx.auth, conversion_id=mine.conversion_id, convert_to_md=True)
    assert again.wait_until_complete(timeout=10)
    assert again.to_md_text().encode() == mine.outputs["md"]
    assert again.to_docx_bytes() == mine.outputs["docx"]
    assert mpx.conversion_delete(mine.conversion_id)["deleted_at"]
    with pytest.raises(PdfError):
        ours.convert_status(mine.conversion_id)
    listed = {d["id"] for d in mpx.query_converter_results(per_page=100)["documents"]}
    assert {d["id"] for d in ours.converter_results()} == listed


def test_app_tokens_cross_over(both, shared) -> None:
    mpx, ours = both
    token = ours.app_token(60, user_id="u-42")
    seen = mpx.app_token_get(token.app_token)
    assert seen["user_id"] == "u-42" and seen["app_id"] == shared.app_id
    body = mpx.app_token_new(expires=60, include_strokes_session_id=True)
    session_token = AppToken.from_response(body)
    with Mathpix(app_token=body["app_token"], base_url=shared.url) as browser_like:
        session = browser_like.strokes_session(token=session_token)
        assert session.add([[(0, 0), (4, 4)]]).text.startswith("echo strokes:1")
    mpx.app_token_delete(token.app_token)
    with pytest.raises(TokenError):
        ours.app_token_get(token)
    assert ours.app_token_delete(session_token).app_token == body["app_token"]
    assert mpx.app_token_get(body["app_token"])["error_info"]["id"] == "token_unknown"


def test_a_batch_and_strokes_read_the_same(both, shared) -> None:
    mpx, ours = both
    url = shared.host_file(png_bytes(text_image(label="mpx")), "m.png")
    theirs = mpx.batch_new(urls={"a": url, "b": url})  # mpxpy's default: ocr_behavior latex
    state = ours.batch_wait(theirs.batch_id, poll_interval=0.05)
    assert all(isinstance(r, LatexResult) for r in state.results.values())
    assert theirs.results() == {k: r.raw for k, r in state.results.items()}
    ink = {"x": [[1, 5, 9]], "y": [[2, 6, 2]]}
    assert mpx.strokes_new(ink)["text"] == ours.strokes(ink).text


def test_usage_and_pdf_history_agree(both, shared) -> None:
    mpx, ours = both
    result = ours.pdf(pdf_bytes(2), poll_interval=0.05)
    assert mpx.query_usage(per_page=100)["ocr_usage"] == ours.ocr_usage().raw["ocr_usage"]
    assert [p["id"] for p in mpx.query_pdf_results()["pdfs"]] == [
        p["id"] for p in ours.pdf_results()
    ]
    assert mpx.pdf_delete(result.pdf_id)["deleted_at"]
    with pytest.raises(PdfError):
        ours.pdf_delete(result.pdf_id)
