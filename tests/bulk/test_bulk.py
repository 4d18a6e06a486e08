"""Bulk OCR of a DataFrame column against the local server over real HTTP."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import mathpix_nb.pandas  # noqa: F401  (registers the accessors)
from mathpix_nb import Mathpix
from mathpix_nb._journal import Journal
from mathpix_nb.bulk import aocr_frame, ocr_frame
from mathpix_nb.server import LocalServer

from .conftest import client_for, tiny_png

FAST = {"poll_interval": 0.02, "progress": False}


def echo_sha(path_or_bytes: str | bytes) -> str:
    import hashlib

    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, str) else path_or_bytes
    return hashlib.sha256(data).hexdigest()[:12]


def submissions(server: LocalServer) -> Counter[str]:
    """How many times the server accepted (processed) each image."""
    return Counter(
        r.image_sha256 for r in server.log if r.endpoint == "/v3/text" and r.image_sha256
    )


def test_results_align_to_any_index_and_input_is_untouched(local_server, make_images) -> None:
    paths = make_images(6)
    index = pd.MultiIndex.from_tuples([("b", 2), ("a", 1), ("a", 1), ("z", 0), ("c", 9), ("d", -1)])
    df = pd.DataFrame({"image_path": paths[::-1], "keep": range(6)}, index=index)
    before = df.copy()
    out = df.mathpix.ocr("image_path", client=client_for(local_server), **FAST)
    pd.testing.assert_frame_equal(df, before)  # not mutated
    assert out is not df and list(out.index) == list(index)
    assert list(out.columns) == [
        "image_path",
        "keep",
        "ocr_text",
        "ocr_latex_styled",
        "ocr_confidence",
        "ocr_request_id",
        "ocr_error",
    ]
    for path, text, err in zip(out["image_path"], out["ocr_text"], out["ocr_error"], strict=True):
        assert err is None
        assert text == f"echo 4x4 sha:{echo_sha(path)}"  # each row got its own image's answer
    assert out["ocr_request_id"].notna().all()
    assert out["ocr_confidence"].eq(1.0).all()
    summary = out.attrs["mathpix_summary"]
    assert (summary["rows"], summary["done"], summary["failed"]) == (6, 6, 0)
    assert summary["submitted"] == 6


def test_series_accessor_and_prefix(local_server, make_images) -> None:
    s = pd.Series(make_images(3), index=[10, 20, 30], name="img")
    out = s.mathpix.ocr(client=client_for(local_server), prefix="mp_", **FAST)
    assert list(out.index) == [10, 20, 30]
    assert list(out.columns) == [
        "mp_text",
        "mp_latex_styled",
        "mp_confidence",
        "mp_request_id",
        "mp_error",
    ]
    assert out["mp_text"].str.startswith("echo 4x4").all()


def test_polls_by_tag_in_pages_not_per_image(make_images) -> None:
    paths = make_images(120)
    with LocalServer(engine="echo", async_delay=0.2) as server:
        out = ocr_frame(
            pd.DataFrame({"p": paths}), "p", client=client_for(server), concurrency=16, **FAST
        )
        assert out["ocr_error"].isna().all()
        log = server.log
    posts = [r for r in log if r.endpoint == "/v3/text"]
    reads = [r for r in log if r.endpoint == "/v3/ocr-results"]
    listings = [r for r in reads if any(t.startswith("mnb-ds-") for t in r.tags)]
    polls = [r for r in reads if r not in listings]
    assert len(posts) == 120
    assert all(
        any(t.startswith(kind) for t in r.tags)
        for r in posts
        for kind in ("mnb-run-", "mnb-row-", "mnb-ds-")
    )
    assert len(listings) == 1  # the dataset's record, read once (empty: a new dataset)
    assert polls and all(any(t.startswith("mnb-run-") for t in r.tags) for r in polls)
    assert len(polls) < 120 / 2  # large pages by tag, not one request per image


def test_identical_images_are_sent_once_within_and_across_runs(
    local_server, make_images, tmp_path: Path
) -> None:
    paths = make_images(5)
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(paths[0]).read_bytes())  # same content, other name
    df = pd.DataFrame({"p": [*paths, paths[0], str(copy), paths[1]]})
    client = client_for(local_server)
    local_server.clear_log()
    # a dataset of its own: the shared server's record of other tests' images is not used
    first = ocr_frame(df, "p", client=client, dataset="sent-once", **FAST)
    assert first["ocr_error"].isna().all()
    assert first["ocr_text"].iloc[5] == first["ocr_text"].iloc[0] == first["ocr_text"].iloc[6]
    assert sum(submissions(local_server).values()) == 5
    s1 = first.attrs["mathpix_summary"]
    assert (s1["submitted"], s1["done"], s1["cached"]) == (5, 5, 3)
    second = ocr_frame(df, "p", client=client, dataset="sent-once", **FAST)
    assert sum(submissions(local_server).values()) == 5  # nothing sent again
    pd.testing.assert_frame_equal(first, second)
    s2 = second.attrs["mathpix_summary"]
    assert (s2["submitted"], s2["cached"], s2["requests"]) == (0, 8, 0)
    # new options are a new job
    third = ocr_frame(df, "p", client=client, formats=["text"], dataset="sent-once", **FAST)
    assert third["ocr_latex_styled"].isna().all() and third["ocr_text"].notna().all()
    assert sum(submissions(local_server).values()) == 10


def test_every_bad_input_kind_lands_in_the_error_column(
    local_server, make_images, tmp_path: Path
) -> None:
    good = make_images(2)
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    (tmp_path / "dir.png").mkdir()
    blank = tmp_path / "blank.png"
    Image.new("L", (10, 10), 255).save(blank)
    url = local_server.host_file(tiny_png(777), "remote.png", "image/png")
    cells = {
        "ok": good[0],
        "none": None,
        "nan": float("nan"),
        "na": pd.NA,
        "empty": "  ",
        "missing": str(tmp_path / "nope.png"),
        "dir": str(tmp_path / "dir.png"),
        "garbage": str(tmp_path / "garbage.png"),
        "blank": str(blank),  # the API answers image_no_content
        "number": 3.5,
        "url": url,
        "bad_url": local_server.url + "/_local/files/does-not-exist.png",
        "bytes": tiny_png(778),
        "pil": Image.open(io.BytesIO(tiny_png(779))),
        "ok2": good[1],
    }
    df = pd.DataFrame({"img": pd.Series(list(cells.values()), index=list(cells), dtype=object)})
    out = ocr_frame(df, "img", client=client_for(local_server), dataset="bad-inputs", **FAST)
    err = out["ocr_error"]
    assert err["ok"] is None and err["ok2"] is None and err["url"] is None
    assert err["bytes"] is None and err["pil"] is None
    assert out.loc["url", "ocr_text"] == f"echo 4x4 sha:{echo_sha(tiny_png(777))}"
    assert out.loc["bytes", "ocr_text"] == f"echo 4x4 sha:{echo_sha(tiny_png(778))}"
    for key in ("none", "nan", "na", "empty"):
        assert err[key].startswith("missing_value:"), err[key]
    assert err["missing"].startswith("file_not_found:") and "nope.png" in err["missing"]
    assert err["dir"].startswith("image_unreadable:") and "directory" in err["dir"]
    assert err["garbage"].startswith("image_unreadable:") and "garbage.png" in err["garbage"]
    assert err["blank"].startswith("image_no_content:")
    assert out.loc["blank", "ocr_request_id"]  # the API's request id is kept for support
    assert err["number"].startswith("unsupported_input:")
    assert err["bad_url"].startswith("image_download_error:")
    s = out.attrs["mathpix_summary"]
    assert s["failed"] == 10 and s["done"] == 5
    # the URL went out as JSON src, not as an upload
    src_posts = [
        r
        for r in local_server.log
        if r.endpoint == "/v3/text"
        and r.image_sha256 == __import__("hashlib").sha256(tiny_png(777)).hexdigest()
    ]
    assert src_posts


def test_bad_arguments_are_named() -> None:
    df = pd.DataFrame({"a": ["x.png"]})
    client = Mathpix("id", "key", base_url="http://127.0.0.1:9")
    with pytest.raises(KeyError, match="'image_path' is not in the DataFrame"):
        df.mathpix.ocr("image_path", client=client, progress=False)
    with pytest.raises(TypeError, match="tags"):
        df.mathpix.ocr("a", client=client, progress=False, tags=["x"])
    clash = pd.DataFrame({"a": ["x.png"], "ocr_text": ["old"]})
    with pytest.raises(ValueError, match="prefix="):
        clash.mathpix.ocr("a", client=client, progress=False)


def test_app_token_falls_back_to_concurrent_sync_requests(local_server, make_images) -> None:
    paths = make_images(12)
    admin = client_for(local_server)
    token = admin.app_token(expires=300)
    client = Mathpix(app_token=token.app_token, base_url=local_server.url)
    local_server.clear_log()
    with pytest.warns(UserWarning, match="falling back to concurrent synchronous") as record:
        out = ocr_frame(pd.DataFrame({"p": paths}), "p", client=client, **FAST)
    ours = [
        w
        for w in record
        if issubclass(w.category, UserWarning) and "falling back" in str(w.message)
    ]
    assert len(ours) == 1  # said once, not per row
    assert out["ocr_error"].isna().all()
    assert out.attrs["mathpix_summary"]["mode"] == "sync"
    posts = [r for r in local_server.log if r.endpoint == "/v3/text"]
    assert len(posts) == 12 and all(r.auth_mode == "app_token" for r in posts)
    assert not [r for r in local_server.log if r.endpoint == "/v3/ocr-results"]
    assert token.app_token not in repr(out.attrs["mathpix_summary"])


def test_improve_mathpix_false_uses_sync_requests(local_server, make_images) -> None:
    paths = make_images(4)
    local_server.clear_log()
    with pytest.warns(UserWarning, match="improve_mathpix=False"):
        out = ocr_frame(
            pd.DataFrame({"p": paths}),
            "p",
            client=client_for(local_server),
            improve_mathpix=False,
            **FAST,
        )
    assert out["ocr_text"].notna().all()
    assert not [r for r in local_server.log if r.endpoint == "/v3/ocr-results"]


def test_bad_credentials_stop_the_run_with_one_clear_error(local_server, make_images) -> None:
    client = Mathpix(local_server.app_id, "wrong-key", base_url=local_server.url)
    out = ocr_frame(pd.DataFrame({"p": make_images(20)}), "p", client=client, **FAST)
    assert out["ocr_error"].str.startswith("http_unauthorized").all()
    assert "wrong-key" not in json.dumps(out["ocr_error"].tolist())
    # the run stopped early instead of hammering the API with every row
    assert len([r for r in local_server.log if r.status_code == 401]) <= 8 + 5


@pytest.mark.anyio
async def test_async_form(local_server, make_images) -> None:
    paths = make_images(5)
    out = await aocr_frame(pd.DataFrame({"p": paths}), "p", client=client_for(local_server), **FAST)
    assert out["ocr_text"].str.startswith("echo").all()
    out2 = await pd.DataFrame({"p": paths}).mathpix.aocr(
        "p", client=client_for(local_server), **FAST
    )
    assert out2.attrs["mathpix_summary"]["cached"] == 5


def test_sync_form_works_inside_a_running_event_loop(local_server, make_images) -> None:
    import asyncio

    paths = make_images(3)

    async def inside_loop() -> pd.DataFrame:
        # what a Jupyter cell does: call the blocking API while a loop is running
        return pd.DataFrame({"p": paths}).mathpix.ocr("p", client=client_for(local_server), **FAST)

    out = asyncio.run(inside_loop())
    assert out["ocr_text"].notna().all()


def test_numpy_and_journal_path_argument(local_server, tmp_path: Path) -> None:
    arr = np.full((6, 6), 255, dtype=np.uint8)
    arr[2, 3] = 0
    journal = tmp_path / "my-journal.sqlite3"
    out = ocr_frame(
        pd.DataFrame({"a": [arr]}), "a", client=client_for(local_server), journal=journal, **FAST
    )
    assert out.loc[0, "ocr_text"].startswith("echo 6x6")
    with Journal(journal) as j:
        assert j.counts() == {"done": 1}


def test_progress_bar_and_summary_line(
    local_server, make_images, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make_images(4)
    out = ocr_frame(
        pd.DataFrame({"p": [*paths, None]}),
        "p",
        client=client_for(local_server),
        poll_interval=0.02,
        dataset="progress-bar",
    )
    captured = capsys.readouterr()
    assert "mathpix OCR" in captured.err and "5/5" in captured.err  # tqdm in a terminal
    assert "4 done, 0 cached, 1 failed, 0 retried" in captured.out  # the summary at the end
    assert local_server.app_key not in captured.out + captured.err
    assert out["ocr_text"].notna().sum() == 4
