"""Journal faults: a corrupt file is a clear error with the fix; a disk that fills mid-run
keeps every finished row in the output."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mathpix_nb import Journal, Mathpix
from mathpix_nb._journal import JournalError
from mathpix_nb.bulk import ocr_frame


def test_a_corrupt_journal_names_the_file_and_the_fix_when_it_is_the_only_record(
    local_server, make_images, tmp_path
) -> None:
    """improve_mathpix=False: Mathpix keeps no copy, so a damaged journal is not replaced
    silently (with the API as the record it is set aside instead: see test_recovery)."""
    bad = tmp_path / "journal.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    client = Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url)
    before = len(local_server.log)
    with pytest.raises(JournalError) as info:
        ocr_frame(
            pd.DataFrame({"p": make_images(2)}),
            "p",
            client=client,
            journal=bad,
            improve_mathpix=False,
        )
    message = str(info.value)
    assert str(bad) in message and "journal repair" in message and "delete" in message
    assert len(local_server.log) == before  # nothing was sent, nothing paid


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs"
)
def test_a_disk_that_fills_mid_run_keeps_every_finished_row(
    local_server, make_images, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[:200]}")
    try:
        paths = make_images(300)
        client = Mathpix(local_server.app_id, local_server.app_key, base_url=local_server.url)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = ocr_frame(
                pd.DataFrame({"p": paths}),
                "p",
                client=client,
                journal=small / "journal.sqlite3",
                poll_interval=0.02,
                progress=False,
            )
        assert out["ocr_error"].isna().all(), out["ocr_error"].dropna().head().tolist()
        assert out["ocr_text"].str.startswith("echo").all()
        assert any("stopped taking writes" in str(w.message) for w in caught)
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_journal_check_repair_forget_commands(tmp_path: Path, capsys) -> None:
    from mathpix_nb.bulk.journal_cli import main

    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        j.claim("k1", run_tag="r", row_tag="t", base_url="u")
        j.done("k2", {"text": "x"}, request_id="r2")
    assert main(["check", str(path)]) == 0
    assert "submitting" in capsys.readouterr().out
    assert main(["forget", "--unfinished", str(path)]) == 0
    with Journal(path) as j:
        assert j.get("k1") is None and j.lookup("k2") == {"text": "x"}
    path.write_bytes(path.read_bytes()[:100] + b"\0garbage" * 500)
    assert main(["check", str(path)]) == 1
    assert main(["repair", str(path)]) == 0
    with Journal(path):
        pass  # usable again
    assert list(tmp_path.glob("j.sqlite3.corrupt*"))
