"""Dask partitions (local threaded scheduler) and the ``mathpix-nb ocr`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mathpix_nb.bulk import cli, ocr_dask
from mathpix_nb.server import LocalServer

from .conftest import client_for
from .test_bulk import echo_sha


def _accepted(server: LocalServer) -> Counter[str]:
    return Counter(
        r.image_sha256 for r in server.log if r.endpoint == "/v3/text" and r.image_sha256
    )


def test_dask_partitions_each_resume_from_the_shared_journal(make_images, tmp_path: Path) -> None:
    dd = pytest.importorskip("dask.dataframe")
    import dask

    paths = make_images(40)
    pdf = pd.DataFrame({"p": paths, "n": range(40)})
    ddf = dd.from_pandas(pdf, npartitions=4)
    journal = tmp_path / "j.sqlite3"
    with LocalServer(engine="echo") as server:
        client = client_for(server)
        with dask.config.set(scheduler="threads"):
            # a first job that only gets through half the partitions (as if it died)
            half = ocr_dask(
                ddf.partitions[:2], "p", client=client, journal=journal, poll_interval=0.02
            ).compute()
            assert half["ocr_error"].isna().all() and len(half) == 20
            assert len(_accepted(server)) == 20
            full = ocr_dask(ddf, "p", client=client, journal=journal, poll_interval=0.02).compute()
        accepted = _accepted(server)
    assert len(full) == 40 and full["ocr_error"].isna().all()
    assert list(full["n"]) == list(range(40))
    assert [t.split("sha:")[1] for t in full["ocr_text"]] == [echo_sha(p) for p in paths]
    assert len(accepted) == 40 and set(accepted.values()) == {1}  # the first half was cached


@pytest.fixture
def server_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with LocalServer(engine="echo") as server:
        monkeypatch.setenv("MATHPIX_APP_ID", server.app_id)
        monkeypatch.setenv("MATHPIX_APP_KEY", server.app_key)
        monkeypatch.setenv("MATHPIX_URL", server.url)
        yield server


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_cli_globs_to_each_output_format(
    server_env, make_images, tmp_path: Path, suffix: str
) -> None:
    paths = make_images(5)
    out = tmp_path / f"results{suffix}"
    rc = cli.main(
        [
            str(Path(paths[0]).parent / "*.png"),
            "--out",
            str(out),
            "--no-progress",
            "--poll-interval",
            "0.02",
        ]
    )
    assert rc == 0
    table = {
        ".csv": pd.read_csv,
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
    }[suffix](out)
    assert sorted(table["image_path"]) == sorted(paths)
    assert all(
        t == f"echo 4x4 sha:{echo_sha(p)}"
        for p, t in zip(table["image_path"], table["ocr_text"], strict=True)
    )


def test_cli_csv_column_exit_status_and_options(
    server_env, make_images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make_images(3)
    csv = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3, 4], "img": [*paths, str(tmp_path / "gone.png")]}).to_csv(
        csv, index=False
    )
    out = tmp_path / "r.jsonl"
    rc = cli.main(
        [
            str(csv),
            "--column",
            "img",
            "--out",
            str(out),
            "--no-progress",
            "--poll-interval",
            "0.02",
            "--formats",
            "text",
            "--option",
            "rm_spaces=false",
        ]
    )
    assert rc == 1  # one row failed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[3]["ocr_error"].startswith("file_not_found") and "gone.png" in rows[3]["ocr_error"]
    assert all(r["ocr_latex_styled"] is None for r in rows)  # formats=text only
    assert "1 failed" in capsys.readouterr().err
    sent = [r for r in server_env.log if r.endpoint == "/v3/text"]
    assert len(sent) == 3


def test_cli_usage_errors(server_env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "in.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(csv, index=False)
    assert cli.main([str(csv), "--no-progress"]) == 2
    assert "--column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["x.png", "--out", "results.xlsx"])
    assert ".csv, .parquet or .jsonl" in capsys.readouterr().err


def test_dispatcher_runs_bulk_cli(server_env, make_images, tmp_path: Path) -> None:
    paths = make_images(2)
    out = tmp_path / "o.csv"
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mathpix_nb",
            "ocr",
            *paths,
            "--out",
            str(out),
            "--no-progress",
            "--poll-interval",
            "0.02",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(out)["ocr_text"].str.startswith("echo").all()


def test_cli_without_credentials_says_how_to_fix(
    make_images, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make_images(1)
    assert cli.main([paths[0], "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "MATHPIX_APP_ID" in err and "Traceback" not in err
