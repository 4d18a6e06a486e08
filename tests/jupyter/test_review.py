"""The Review widget from Python: messages as review.js sends them, against a real bulk run.

The frame under review comes from ``ocr_frame`` against a local server whose echo engine
grades each image (confidence from its content) and answers ``image_no_content`` for blank
ones; re-OCR goes through the same server over loopback HTTP and the same journal.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")

from mathpix_nb import Mathpix  # noqa: E402
from mathpix_nb._journal import Journal  # noqa: E402

FAST = {"poll_interval": 0.02, "progress": False}


def graded_engine() -> Any:
    from mathpix_nb.server import EchoEngine

    class Graded(EchoEngine):  # type: ignore[misc]
        """Echo, with a confidence in 0..1 read from the image's hash (distinct per image)."""

        def recognize(self, image: bytes, options: Any) -> dict[str, Any]:
            out: dict[str, Any] = super().recognize(image, options)
            conf = round(hashlib.sha256(image).digest()[0] / 255, 4)
            if out["lines"]:
                out["confidence"] = out["confidence_rate"] = conf
                for line in out["lines"]:
                    line["confidence"] = conf
                    line["text"] = f"{line['text']} with \\( x^{{2}} \\)"
            return out

    return Graded()


def write_images(folder: Path, n: int, blank: tuple[int, ...] = ()) -> list[str]:
    """n distinct 80x40 PNGs (the ones in ``blank`` are one colour: nothing to read)."""
    from PIL import Image, ImageDraw

    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (80, 40), "white")
        if i not in blank:
            ImageDraw.Draw(img).rectangle((5, 5, 10 + i % 60, 30), fill=(i % 256, 0, 0))
        path = folder / f"img{i:03d}.png"
        img.save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from mathpix_nb.server import LocalServer

    with LocalServer(engine=graded_engine()) as srv:
        yield srv


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    with Mathpix(server.app_id, server.app_key, base_url=server.url) as c:
        yield c


@pytest.fixture
def run(tmp_path: Path, client: Any) -> dict[str, Any]:
    """A bulk run of 12 images (2 blank) with a journal on disk."""
    import mathpix_nb.pandas  # noqa: F401

    paths = write_images(tmp_path / "img", 12, blank=(3, 7))
    journal = tmp_path / "journal.sqlite3"
    df = pd.DataFrame({"image_path": paths, "page": range(12)})
    out = df.mathpix.ocr("image_path", client=client, journal=str(journal), **FAST)
    return {"df": df, "out": out, "journal": journal, "paths": paths}


class Page:
    """Plays review.js: trait changes and custom messages, capturing what the kernel sends."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.received: list[tuple[dict[str, Any], list[bytes]]] = []
        original = widget.send

        def capture(content: Any, buffers: Any = None) -> None:
            self.received.append((content, [bytes(b) for b in buffers or []]))
            original(content, buffers)

        widget.send = capture

    def set(self, **state: Any) -> None:
        self.widget.set_state(state)

    def send(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        self.received.clear()
        self.widget._handle_custom_msg(content, [])
        return self.received[-1] if self.received else ({}, [])

    def of(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [(c, b) for c, b in self.received if c.get("type") == kind]


def open_review(run: dict[str, Any], client: Any, **kw: Any) -> tuple[Any, Page]:
    from mathpix_nb import Review

    review = Review(run["out"], client=client, journal=Journal(run["journal"]), **kw)
    return review, Page(review)


def test_worst_first_errors_on_top_and_rows_by_message(run: dict[str, Any], client: Any) -> None:
    out = run["out"]
    review, page = open_review(run, client)
    assert review.total == review.count == 12
    errors = out.index[out["ocr_error"].notna()].tolist()
    assert sorted(errors) == [3, 7]  # the blank images
    order = review.order
    assert sorted(order[:2]) == [3, 7]  # errors on top
    confs = [out["ocr_confidence"].iloc[i] for i in order[2:]]
    assert confs == sorted(confs)  # then lowest confidence first
    assert review.stats["errors"] == 2

    msg, _ = page.send({"type": "rows", "start": 0, "stop": 5, "version": review.version})
    assert msg["type"] == "rows" and msg["start"] == 0 and len(msg["rows"]) == 5
    first = msg["rows"][0]
    assert first["error_id"] == "image_no_content" and first["row"] in (3, 7)
    third = msg["rows"][2]
    assert third["text"].startswith("echo ") and "x^{2}" in third["text"]
    assert third["request_id"] == out["ocr_request_id"].iloc[third["row"]]
    assert third["confidence"] == pytest.approx(out["ocr_confidence"].iloc[third["row"]])
    # A page is bounded whatever the page asks for.
    msg, _ = page.send({"type": "rows", "start": 0, "stop": 10**9, "version": review.version})
    assert len(msg["rows"]) == 12
    review.close()


def test_the_accessor_and_a_prefix(run: dict[str, Any], client: Any, tmp_path: Path) -> None:
    review = run["out"].mathpix.review(client=client, journal=False, fixed="checked_text")
    assert review.frame is run["out"] and "checked_text" in run["out"].columns
    review.close()
    mp = run["df"].mathpix.ocr(
        "image_path", client=client, journal=str(run["journal"]), prefix="mp_", **FAST
    )
    other = mp.mathpix.review(text="mp_text", client=client, journal=False)
    assert other.columns["confidence"] == "mp_confidence" and other.stats["errors"] == 2
    other.close()


def test_filters_from_the_page(run: dict[str, Any], client: Any) -> None:
    review, page = open_review(run, client)
    v0 = review.version
    page.set(errors_only=True)
    assert review.count == 2 and review.version > v0
    page.set(errors_only=False, below=0.5)
    expected = int((run["out"]["ocr_confidence"] < 0.5).sum()) + 2  # errors have none
    assert review.count == expected
    page.set(below=None, contains="ECHO 80X40")  # case-insensitive, in the text
    assert review.count == 10
    page.set(contains="no_content")  # or in the error
    assert review.count == 2
    page.set(contains="")
    assert review.count == 12
    review.close()


def test_thumbnails_are_small_binary_messages_on_demand(run: dict[str, Any], client: Any) -> None:
    from PIL import Image

    review, page = open_review(run, client)
    assert not page.of("thumbs")  # nothing is sent before the page asks
    msg, buffers = page.send({"type": "thumbs", "rows": [0, 1, 2, 999, "x"]})
    assert [item["row"] for item in msg["items"]] == [0, 1, 2]
    assert len(buffers) == 3
    with Image.open(io.BytesIO(buffers[0])) as img:
        assert img.format == "WEBP" and max(img.size) <= 192
    msg, buffers = page.send({"type": "thumbs", "rows": list(range(12)) * 10})
    assert len(buffers) <= 64  # bounded per message
    review.close()


def test_detail_sends_the_image_and_the_crop_it_was_read_with(
    run: dict[str, Any], client: Any
) -> None:
    review, page = open_review(run, client, crop=(2, 2, 60, 30))
    msg, buffers = page.send({"type": "detail", "row": 4})
    assert msg["type"] == "detail" and msg["row"] == 4
    assert (msg["width"], msg["height"]) == (80, 40)
    assert msg["crop"] == [2, 2, 60, 30]
    assert buffers and buffers[0][:8] == b"\x89PNG\r\n\x1a\n"
    review.close()


def test_edit_writes_the_frame_and_the_journal_and_a_rerun_keeps_it(
    run: dict[str, Any], client: Any
) -> None:
    out = run["out"]
    review, page = open_review(run, client)
    page.send({"type": "edit", "row": 5, "text": r"the fixed \( y^{3} \)"})
    assert out["ocr_text_fixed"].iloc[5] == r"the fixed \( y^{3} \)"
    assert out["ocr_reviewed"].iloc[5]
    assert not out["ocr_reviewed"].iloc[4] and out["ocr_text_fixed"].isna().iloc[4]
    assert page.of("row")[0][0]["row"]["fixed"] == r"the fixed \( y^{3} \)"
    page.send({"type": "accept", "row": 6})
    assert out["ocr_text_fixed"].iloc[6] == out["ocr_text"].iloc[6]
    assert review.stats["reviewed"] == 2
    review.close()

    with Journal(run["journal"]) as journal:
        fixes = journal.corrections()
    assert sorted(c.text for c in fixes.values()) == sorted(
        [r"the fixed \( y^{3} \)", out["ocr_text"].iloc[6]]
    )

    # A rerun of the notebook: the bulk run answers from the journal, the review shows the fix.
    rerun = run["df"].mathpix.ocr("image_path", client=client, journal=str(run["journal"]), **FAST)
    assert rerun.attrs["mathpix_summary"]["cached"] == 10
    again, _ = open_review({**run, "out": rerun}, client)
    assert rerun["ocr_text_fixed"].iloc[5] == r"the fixed \( y^{3} \)"
    assert rerun["ocr_reviewed"].tolist().count(True) == 2
    # Revert: gone from the frame and the journal.
    again.revert(5)
    assert not rerun["ocr_reviewed"].iloc[5] and rerun["ocr_text_fixed"].isna().iloc[5]
    assert len(again.journal.corrections()) == 1
    again.close()


def test_reocr_pays_one_request_and_a_repeat_none(
    run: dict[str, Any], client: Any, server: Any
) -> None:
    out = run["out"]
    review, page = open_review(run, client)
    server.clear_log()
    page.send({"type": "reocr", "row": 2, "crop": [0, 0, 40, 20], "options": {}})
    posts = [r for r in server.log if r.endpoint == "/v3/text"]
    assert len(posts) == 1  # only this row, only once
    reply = page.of("reocr")[0][0]
    assert reply["text"].startswith("echo 40x20 ")  # the server got the crop
    assert reply["crop"] == [0, 0, 40, 20] and reply["cached"] is False
    assert out["ocr_text_fixed"].iloc[2] == reply["text"] and out["ocr_reviewed"].iloc[2]
    assert out["ocr_text"].iloc[2].startswith("echo 80x40 ")  # the OCR column stays as read
    # The same crop and options again: the journal answers, nothing is paid.
    page.send({"type": "reocr", "row": 2, "crop": [0, 0, 40, 20], "options": {}})
    assert len([r for r in server.log if r.endpoint == "/v3/text"]) == 1
    assert page.of("reocr")[0][0]["cached"] is True
    # The large image now shows the box it was read with.
    msg, _ = page.send({"type": "detail", "row": 2})
    assert msg["crop"] == [0, 0, 40, 20]
    # An empty box from the page is the whole image (one more request, the full 80x40).
    page.send({"type": "reocr", "row": 2, "crop": [], "options": {}})
    assert page.of("reocr")[0][0]["text"].startswith("echo 80x40 ")
    assert len([r for r in server.log if r.endpoint == "/v3/text"]) == 2
    # Bad options from the page: a plain error in the view, nothing sent.
    page.send({"type": "reocr", "row": 2, "crop": [], "options": {"formatz": ["text"]}})
    assert "formatz" in review.error and review.status == "error"
    assert len([r for r in server.log if r.endpoint == "/v3/text"]) == 2
    review.close()


def test_saved_state_has_no_images_rows_or_secrets(
    run: dict[str, Any], client: Any, server: Any
) -> None:
    from ipywidgets.embed import embed_data

    review, page = open_review(run, client)
    page.send({"type": "rows", "start": 0, "stop": 12, "version": review.version})
    _, thumbs = page.send({"type": "thumbs", "rows": list(range(12))})
    _, big = page.send({"type": "detail", "row": 0})
    page.send({"type": "reocr", "row": 1, "crop": [0, 0, 30, 30], "options": {}})
    page.send({"type": "edit", "row": 0, "text": "fixed"})
    manager = embed_data(views=[review])["manager_state"]
    # The review's model (other tests' widgets may still be alive in this process).
    manager["state"] = {review.model_id: manager["state"][review.model_id]}
    state = json.dumps(manager)
    assert server.app_key not in state
    for image in [*thumbs, *big]:
        assert base64.b64encode(image[:30]).decode() not in state
        assert base64.b64encode(image[-30:]).decode() not in state
    assert not any(m["state"].get("buffers") for m in manager["state"].values())
    assert "data:image" not in state
    assert "echo 80x40" not in state  # the rows' text travels by message, not in the state
    ours = {k: v for k, v in review.get_state().items() if k not in ("_esm", "_css")}
    assert len(json.dumps(ours, default=str)) < 2_000  # the same for 12 rows or 10,000
    review.close()


def test_export_csv_and_parquet(run: dict[str, Any], client: Any, tmp_path: Path) -> None:
    review, _ = open_review(run, client)
    review.edit(0, "fixed zero")
    csv = review.export(tmp_path / "fixed.csv")
    back = pd.read_csv(csv, index_col=0)
    assert back["ocr_text_fixed"].iloc[0] == "fixed zero" and bool(back["ocr_reviewed"].iloc[0])
    pq = review.export(tmp_path / "fixed.parquet", reviewed_only=True)
    back = pd.read_parquet(pq)
    assert back["ocr_text_fixed"].tolist() == ["fixed zero"]
    with pytest.raises(ValueError, match=r"\.csv or a \.parquet"):
        review.export(tmp_path / "fixed.xlsx")
    review.close()


def test_bad_input_says_what_to_pass(run: dict[str, Any], client: Any) -> None:
    from mathpix_nb import Review

    with pytest.raises(KeyError, match="text="):
        Review(run["out"], text="nope", journal=False)
    two = run["out"].rename(columns={"image_path": "scan"}).assign(other=["x"] * 12)
    with pytest.raises(ValueError, match="image="):
        Review(two, journal=False)
    with pytest.raises(TypeError, match="DataFrame"):
        Review([1, 2], journal=False)  # type: ignore[arg-type]
    review = Review(two, image="scan", journal=False)
    with pytest.raises(IndexError, match=r"0\.\.11"):
        review.edit(12, "x")
    # A page message naming a row that is not there: a plain error, no exception.
    Page(review).send({"type": "edit", "row": 99, "text": "x"})
    assert "99" in review.error
    review.close()


def test_a_missing_image_is_one_rows_problem(tmp_path: Path, client: Any) -> None:
    from mathpix_nb import Review

    paths = write_images(tmp_path / "img", 2)
    df = pd.DataFrame(
        {
            "image_path": [*paths, str(tmp_path / "gone.png")],
            "ocr_text": ["a", "b", None],
            "ocr_confidence": pd.array([0.5, 0.9, None], dtype="Float64"),
            "ocr_error": [None, None, "file_not_found: gone"],
        }
    )
    review = Review(df, client=client, journal=False)
    page = Page(review)
    msg, buffers = page.send({"type": "thumbs", "rows": [0, 1, 2]})
    assert len(buffers) == 2 and "gone.png" in msg["items"][2]["error"]
    page.send({"type": "reocr", "row": 2, "crop": [], "options": {}})
    assert "gone.png" in review.error
    assert review.order[0] == 2
    review.close()
