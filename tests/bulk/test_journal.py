"""The SQLite journal on its own: keys, the job life cycle, persistence and concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mathpix_nb._journal import Journal, default_journal_path, process_alive


def test_default_path_follows_mathpix_nb_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATHPIX_NB_HOME", str(tmp_path / "home"))
    assert default_journal_path() == tmp_path / "home" / "journal.sqlite3"
    with Journal() as j:
        j.done("k", {"text": "x"})
    assert (tmp_path / "home" / "journal.sqlite3").exists()


def test_key_depends_on_content_options_crop_and_region() -> None:
    base = Journal.make_key("a" * 64, {"formats": ["text"]}, region="global")
    assert base == Journal.make_key("a" * 64, {"formats": ["text"]}, region="global")
    assert base != Journal.make_key("b" * 64, {"formats": ["text"]}, region="global")
    assert base != Journal.make_key("a" * 64, {"formats": ["text", "data"]}, region="global")
    assert base != Journal.make_key("a" * 64, {"formats": ["text"]}, region="eu")
    cropped = Journal.make_key("a" * 64, {"formats": ["text"]}, region="global", crop=(0, 0, 5, 5))
    assert base != cropped


def test_life_cycle_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        assert j.claim("k1", run_tag="mnb-run-1", row_tag="mnb-row-1", base_url="http://x")
        assert j.get("k1").state == "submitting"
        j.submitted("k1", "req-1")
        assert j.claim("k2", row_tag="mnb-row-2")
    with Journal(path) as j:
        e1 = j.get("k1")
        assert (e1.state, e1.request_id, e1.run_tag, e1.row_tag) == (
            "submitted",
            "req-1",
            "mnb-run-1",
            "mnb-row-1",
        )
        assert {e.key for e in j.pending()} == {"k1", "k2"}
        assert [e.key for e in j.pending(base_url="http://x")] == ["k1"]
        j.done("k1", {"text": "hello", "request_id": "req-1"}, request_id="req-1")
        j.failed("k2", "image_no_content", "Content not found")
    with Journal(path) as j:
        assert j.lookup("k1") == {"text": "hello", "request_id": "req-1"}
        assert j.get("k2").final and j.get("k2").error_id == "image_no_content"
        assert j.pending() == []
        assert j.counts() == {"done": 1, "failed": 1}


def test_claim_refuses_jobs_that_must_not_be_resent(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as j:
        assert j.claim("k")
        j.submitted("k", "r")
        assert not j.claim("k")  # already at the API: poll it, never resend
        j.done("k", {"text": "t"})
        assert not j.claim("k")  # cached
        assert j.claim("k", force=True)  # explicit override


def test_submitting_job_of_a_dead_process_can_be_reclaimed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    code = (
        "from mathpix_nb._journal import Journal\n"
        f"Journal({str(path)!r}).claim('k', row_tag='mnb-row-k')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with Journal(path) as j:
        entry = j.get("k")
        assert entry.state == "submitting" and not process_alive(entry.owner)
        assert j.claim("k")  # the other process is gone, so its intent is ours to resolve
        assert j.get("k").attempts == 2


def test_a_closed_journal_in_this_process_counts_as_a_dead_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    first, second = Journal(path), Journal(path)
    assert first.claim("k")
    assert not second.claim("k")  # the first run is alive (its journal is open)
    first.close()  # e.g. the cell was interrupted and the run ended
    assert second.claim("k")
    second.close()


def test_transient_failure_releases_the_job(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as j:
        j.claim("k")
        j.failed("k", "sys_exception", "boom", permanent=False)
        assert j.get("k") is None


def test_concurrent_claims_have_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journals = [Journal(path) for _ in range(8)]
    # eight open journals = eight live runs in this process
    wins: list[bool] = []
    barrier = threading.Barrier(len(journals))

    def go(j: Journal) -> None:
        barrier.wait()
        wins.append(j.claim("same-key"))

    threads = [threading.Thread(target=go, args=(j,)) for j in journals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    for j in journals:
        j.close()
