"""The API is the journal of record: a rerun whose journal is gone, corrupt or elsewhere pays
for nothing Mathpix already accepted, and reads that back at one request per page of jobs.

Every test counts what the local server saw: ``POST v3/text`` (an upload, billed) and
``GET v3/ocr-results`` (a listing page or a poll, free).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mathpix_nb._journal import Journal
from mathpix_nb.bulk import ocr_frame
from mathpix_nb.bulk._engine import dataset_tag
from mathpix_nb.server import LocalServer

from .conftest import client_for
from .test_bulk import FAST, echo_sha

pytestmark = pytest.mark.timeout(90)


def _posts(server: LocalServer) -> int:
    return sum(1 for r in server.log if r.endpoint == "/v3/text" and r.method == "POST")


def _reads(server: LocalServer, tag_prefix: str | None = None) -> int:
    return sum(
        1
        for r in server.log
        if r.endpoint == "/v3/ocr-results"
        and (tag_prefix is None or any(t.startswith(tag_prefix) for t in r.tags))
    )


def _delete(journal: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal) + suffix).unlink(missing_ok=True)


def _run(server: LocalServer, paths: list[str], **kw: object) -> pd.DataFrame:
    df = pd.DataFrame({"p": paths})
    return ocr_frame(df, "p", client=client_for(server), **{**FAST, **kw})  # type: ignore[arg-type]


def _texts_match(out: pd.DataFrame, paths: list[str]) -> None:
    assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().head()
    assert [t.split("sha:")[1] for t in out["ocr_text"]] == [echo_sha(p) for p in paths]


def test_a_deleted_journal_costs_one_listing_per_page_and_no_upload(
    make_images, tmp_path: Path
) -> None:
    paths = make_images(250)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo") as server:
        first = _run(server, paths, journal=journal, concurrency=16, per_page=100)
        assert _posts(server) == 250
        _delete(journal)
        before = _reads(server)
        again = _run(server, paths, journal=journal, per_page=100)
        rerun_reads = _reads(server) - before
        assert _posts(server) == 250  # not one image paid twice
    _texts_match(again, paths)
    assert list(again["ocr_request_id"]) == list(first["ocr_request_id"])
    summary = again.attrs["mathpix_summary"]
    assert (summary["submitted"], summary["recovered"], summary["listed"]) == (0, 250, 250)
    # 250 jobs at 100 a page: 3 pages, and nothing left to poll
    assert rerun_reads <= math.ceil(250 / 100)
    # the journal is filled again: a third run asks nothing of the API for these rows
    with LocalServer(engine="echo") as other:  # a server that never saw them
        third = _run(other, paths, journal=journal)
        assert _posts(other) == 0
    _texts_match(third, paths)


def test_jobs_another_machine_sent_after_this_journal_listed_are_not_paid_again(
    make_images, tmp_path: Path
) -> None:
    """A journal that has listed the dataset before lists again from there (minus a margin),
    so what another machine's journal recorded since is found too."""
    paths = make_images(30)
    here, there = tmp_path / "here.sqlite3", tmp_path / "there.sqlite3"
    with LocalServer(engine="echo") as server:
        _run(server, paths[:10], journal=here)
        with Journal(here) as j:
            base = client_for(server).base_url
            assert j.synced_until(dataset_tag("default"), base_url=base) is not None
        _run(server, paths[10:], journal=there)  # "another machine" sent the rest
        before = _posts(server)
        out = _run(server, paths, journal=here)
        assert _posts(server) == before
        assert out.attrs["mathpix_summary"]["recovered"] == 20
    _texts_match(out, paths)


def test_a_corrupt_journal_is_set_aside_and_the_rerun_pays_nothing(
    make_images, tmp_path: Path
) -> None:
    paths = make_images(12)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo") as server:
        _run(server, paths, journal=journal)
        _delete(journal)
        journal.write_bytes(b"this is not a database" * 100)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = _run(server, paths, journal=journal)
        assert _posts(server) == 12
    _texts_match(out, paths)
    moved = [w for w in caught if "set aside" in str(w.message)]
    assert moved, [str(w.message) for w in caught]
    assert str(journal) in str(moved[0].message)
    assert list(tmp_path.glob("j.sqlite3.corrupt-*"))  # kept for inspection, not deleted


def test_two_datasets_sharing_images_pay_once(make_images) -> None:
    a, b = make_images(20), make_images(20, start=10)  # 10 images in common
    with LocalServer(engine="echo") as server:
        _run(server, a, journal=False)
        _run(server, b, journal=False)  # no journal at all: only the API knows
        assert _posts(server) == 30
        # a separately named dataset is its own record: its shared images are sent again
        _run(server, b, journal=False, dataset="other")
        assert _posts(server) == 50


def test_jobs_still_processing_when_the_journal_was_lost_are_polled_not_resent(
    make_images, tmp_path: Path
) -> None:
    paths = make_images(16)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo", async_delay=1.5) as server:
        first = _run(server, paths, journal=journal, timeout=0.6)
        assert first["ocr_error"].str.startswith("poll_timeout").any()
        sent = _posts(server)
        _delete(journal)
        out = _run(server, paths, journal=journal)
        assert _posts(server) == sent  # the accepted ones were found, the rest sent once
    _texts_match(out, paths)
    assert out.attrs["mathpix_summary"]["recovered"] == sent


def test_recover_false_skips_the_listing(make_images) -> None:
    paths = make_images(5)
    with LocalServer(engine="echo") as server:
        _run(server, paths, journal=False, recover=False)
        assert _reads(server, "mnb-ds-") == 0
        _run(server, paths, journal=False, recover=False)
        assert _posts(server) == 10  # no journal and no listing: paid again, as asked


def test_improve_mathpix_false_keeps_the_journal_mandatory(make_images) -> None:
    with LocalServer(engine="echo") as server:
        with pytest.raises(ValueError, match="only the journal can resume"):
            _run(server, make_images(1), journal=False, improve_mathpix=False)
        assert _posts(server) == 0


@pytest.mark.parametrize("bad", ["", "  ", "x" * 201, "a\nb", 3])
def test_a_bad_dataset_name_is_refused_before_any_row(bad: object, make_images) -> None:
    with LocalServer(engine="echo") as server:
        with pytest.raises(ValueError, match="dataset="):
            _run(server, make_images(1), journal=False, dataset=bad)
        assert len(server.log) == 0


def test_data_and_html_formats_give_their_own_columns(make_images) -> None:
    paths = make_images(3)
    with LocalServer(engine="echo") as server:
        out = _run(
            server,
            paths,
            journal=False,
            formats=["text", "data", "html"],
            data_options={"include_asciimath": True},
        )
        plain = _run(server, paths, journal=False)
    assert {"ocr_data", "ocr_html"} <= set(out.columns)
    assert {"ocr_data", "ocr_html"}.isdisjoint(plain.columns)
    for cell in out["ocr_data"]:
        data = json.loads(cell)
        assert isinstance(data, list) and data and {"type", "value"} <= set(data[0])
    assert out["ocr_html"].str.startswith("<div>").all()


def test_the_cache_keeps_only_what_the_journal_lacks(make_images, tmp_path: Path) -> None:
    paths = make_images(8)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo") as server:
        _run(server, paths[:4], journal=journal)
        _run(server, paths[4:], journal=tmp_path / "other.sqlite3")
        _run(server, paths, journal=journal)  # lists the dataset: 4 known here, 4 not
        base = client_for(server).base_url
    with Journal(journal) as j:
        tags = {e.row_tag for e in map(j.get, _keys(j))}
        cached = [t for t in tags if t and j.remote(t, base_url=base) is not None]
    assert len(tags) == 8
    assert len(cached) == 4  # the 4 the other journal sent; not a copy of this one's own rows


def _keys(journal: Journal) -> list[str]:
    return [row[0] for row in journal.raw_rows()]


def test_a_server_that_cuts_per_page_silently_still_loses_no_job(
    make_images, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether Mathpix caps per_page below 1000 is not documented: a listing that stopped at
    the first short page would miss every job past it and pay for them again."""
    paths = make_images(120)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo", results_page_cap=50) as server:
        _run(server, paths, journal=journal, per_page=50, concurrency=16)
        _delete(journal)
        before = len(server.log)
        with caplog.at_level("WARNING", logger="mathpix_nb.bulk"):
            again = _run(server, paths, journal=journal)  # asks for 1000 a page
        listings = [r for r in server.log[before:] if r.endpoint == "/v3/ocr-results"]
        assert _posts(server) == 120
    _texts_match(again, paths)
    assert again.attrs["mathpix_summary"]["recovered"] == 120
    assert len(listings) == 3  # 50 + 50 + 20
    assert "at most 50 items a page" in caplog.text


def test_polls_on_a_server_that_cuts_per_page_read_every_result(
    make_images, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listed before (a fresh dataset, or recover=False): the polls themselves must
    notice a page cut short by the server, or results past it are never read and the run
    waits for them until its deadline."""
    paths = make_images(120)
    with LocalServer(engine="echo", results_page_cap=50) as server:
        with caplog.at_level("WARNING", logger="mathpix_nb.bulk"):
            out = _run(
                server,
                paths,
                journal=tmp_path / "j.sqlite3",
                recover=False,
                timeout=20.0,
                poll_interval=0.5,  # every job is done at the first poll: 120 > one page
            )
        assert _posts(server) == 120
        polls = _reads(server)
    _texts_match(out, paths)
    assert "at most 50 items a page" in caplog.text
    assert polls <= 12, polls
