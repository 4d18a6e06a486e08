"""``mathpix-nb ocr``: one image to stdout, several into a table, usage errors before any OCR."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mathpix_nb.server import LocalServer

from .conftest import Run, echo_text

pytestmark = pytest.mark.timeout(120)


def _texts(server: LocalServer) -> int:
    return sum(1 for r in server.log if r.endpoint == "/v3/text")


def test_one_image_prints_its_mathpix_markdown(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]
) -> None:
    image = make_image()
    run = mathpix_nb("ocr", str(image))
    assert run.returncode == 0, run.stderr
    assert run.stdout == echo_text(image.read_bytes(), (120, 60)) + "\n"


@pytest.mark.parametrize("fmt", ["latex", "html", "json"])
def test_one_image_formats(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path], fmt: str
) -> None:
    image = make_image()
    text = echo_text(image.read_bytes(), (120, 60))
    run = mathpix_nb("ocr", str(image), "--format", fmt)
    assert run.returncode == 0, run.stderr
    if fmt == "latex":
        assert run.stdout.strip() == "\\text{" + text + "}"
    elif fmt == "html":
        assert text in run.stdout and "<" in run.stdout
    else:
        assert json.loads(run.stdout)["text"] == text


def test_json_is_one_line_of_machine_output(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]
) -> None:
    image = make_image()
    run = mathpix_nb("ocr", str(image), "--json")
    assert run.returncode == 0
    [line] = run.stdout.splitlines()
    body = json.loads(line)
    assert body["text"] == echo_text(image.read_bytes(), (120, 60)) and body["request_id"]


def test_json_reports_a_failed_image_and_exits_1(
    mathpix_nb: Callable[..., Run], tmp_path: Path
) -> None:
    run = mathpix_nb("ocr", str(tmp_path / "gone.png"), "--json")
    assert run.returncode == 1
    error = json.loads(run.stdout)["error"]
    assert "gone.png" in error["message"] and error["id"]


def test_dash_reads_the_image_from_stdin(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]
) -> None:
    data = make_image().read_bytes()
    run = mathpix_nb("ocr", "-", stdin=data)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == echo_text(data, (120, 60))
    empty = mathpix_nb("ocr", "-", stdin=b"")
    assert empty.returncode == 2 and "stdin was empty" in empty.stderr


def test_literal_names_with_glob_characters(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]
) -> None:
    odd = make_image("scan[1].png", seed=1)
    other = make_image("scan1.png", seed=2)  # what the pattern scan[1].png would match
    run = mathpix_nb("ocr", str(odd))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == echo_text(odd.read_bytes(), (120, 60))
    table = mathpix_nb("ocr", str(odd), str(other), "--no-progress", "--poll-interval", "0.05")
    assert table.returncode == 0, table.stderr
    df = pd.read_csv(io.StringIO(table.stdout))
    assert list(df["image_path"]) == [str(odd), str(other)]
    assert df["ocr_text"][0] == echo_text(odd.read_bytes(), (120, 60))


def test_several_images_keep_the_table_and_one_failure_exits_1(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path], tmp_path: Path
) -> None:
    a, b = make_image("a.png", seed=3), make_image("b.png", seed=4)
    gone = tmp_path / "gone.png"
    run = mathpix_nb("ocr", str(a), str(b), str(gone), "--no-progress", "--poll-interval", "0.05")
    assert run.returncode == 1
    df = pd.read_csv(io.StringIO(run.stdout))
    assert list(df["image_path"]) == [str(a), str(b), str(gone)]
    assert df["ocr_error"].isna().tolist() == [True, True, False]
    assert "1 failed" in run.stderr
    jsonl = mathpix_nb("ocr", str(a), str(b), "--json", "--no-progress", "--poll-interval", "0.05")
    assert jsonl.returncode == 0
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["ocr_text"] for r in rows] == [echo_text(p.read_bytes(), (120, 60)) for p in (a, b)]


def test_out_dev_stdout(mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]) -> None:
    a, b = make_image("a.png", seed=5), make_image("b.png", seed=6)
    run = mathpix_nb(
        "ocr", str(a), str(b), "--out", "/dev/stdout", "--no-progress", "--poll-interval", "0.05"
    )
    assert run.returncode == 0, run.stderr
    assert list(pd.read_csv(io.StringIO(run.stdout))["image_path"]) == [str(a), str(b)]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


USAGE = {
    "empty CSV": (lambda t: [_write(t / "e.csv", "")], "is empty"),
    "CSV with no rows": (lambda t: [_write(t / "h.csv", "image_path\n")], "has no rows"),
    "--out a directory": (lambda t: ["a.png", "b.png", "--out", str(t)], "is a directory"),
    "--out bad suffix": (lambda t: ["a.png", "b.png", "--out", "r.xlsx"], ".csv, .parquet"),
    "--option async": (lambda t: ["a.png", "b.png", "--option", "async=true"], "--option async"),
    "--option unknown": (lambda t: ["a.png", "--option", "rm_spacez=true"], "rm_spaces"),
    "--option wrong type": (lambda t: ["a.png", "--option", "rm_spaces=3"], "rm_spaces"),
    # the journal is the only record of --no-improve-mathpix results: not replaced silently
    "corrupt --journal": (
        lambda t: [
            "a.png",
            "b.png",
            "--no-improve-mathpix",
            "--journal",
            _write(t / "j.sqlite3", "not a db" * 200),
        ],
        "--journal",
    ),
    "--journal a directory": (lambda t: ["a.png", "b.png", "--journal", str(t)], "directory"),
    "empty --dataset": (lambda t: ["a.png", "b.png", "--dataset", " "], "--dataset"),
    "negative --poll-interval": (lambda t: ["a.png", "--poll-interval", "-1"], "--poll-interval"),
    "negative --timeout": (lambda t: ["a.png", "b.png", "--timeout", "-5"], "--timeout"),
    "--format with several": (lambda t: ["a.png", "b.png", "--format", "latex"], "--format"),
    "stdin among several": (lambda t: ["-", "b.png"], "'-'"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_bad_usage_exits_2_before_any_ocr(
    mathpix_nb: Callable[..., Run],
    cli_server: LocalServer,
    make_image: Callable[..., Path],
    tmp_path: Path,
    case: str,
) -> None:
    make_image("a.png"), make_image("b.png", seed=7)
    build, needle = USAGE[case]
    before = _texts(cli_server)
    run = mathpix_nb("ocr", *build(tmp_path))
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert needle in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert _texts(cli_server) == before  # nothing was sent


def test_missing_credentials_speak_shell(
    mathpix_nb: Callable[..., Run], cli_env: dict[str, str], make_image: Callable[..., Path]
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("MATHPIX_APP")}
    run = mathpix_nb("ocr", str(make_image()), env=env)
    assert run.returncode == 2
    assert "MATHPIX_APP_ID" in run.stderr and "mathpix-nb serve" in run.stderr
    assert "app_id=" not in run.stderr and "base_url=" not in run.stderr


def test_missing_extras_give_an_install_hint(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path], tmp_path: Path
) -> None:
    a, b = make_image("a.png", seed=8), make_image("b.png", seed=9)
    no_pandas = "sys.modules['pandas'] = None"
    run = mathpix_nb("ocr", str(a), str(b), prelude=no_pandas)
    assert run.returncode == 2 and "pip install 'mathpix_nb[pandas]'" in run.stderr
    assert "Traceback" not in run.stderr
    one = mathpix_nb("ocr", str(a), prelude=no_pandas)  # one image needs no pandas
    assert one.returncode == 0 and one.stdout.startswith("echo ")
    no_arrow = "sys.modules['pyarrow'] = None; sys.modules['fastparquet'] = None"
    out = tmp_path / "r.parquet"
    run = mathpix_nb("ocr", str(a), str(b), "--out", str(out), prelude=no_arrow)
    assert run.returncode == 2 and "pip install pyarrow" in run.stderr and not out.exists()


def test_dispatcher_usage_and_demo_exit_status(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path], tmp_path: Path
) -> None:
    assert mathpix_nb().returncode == 2
    assert mathpix_nb("nope").returncode == 2
    assert mathpix_nb("--help").returncode == 0
    demo = mathpix_nb("demo", str(make_image()), str(tmp_path / "gone.png"))
    assert demo.returncode == 1 and "gone.png" in demo.stdout


def test_formats_data_and_html_are_columns_of_the_table(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path]
) -> None:
    a, b = make_image("a.png", seed=21), make_image("b.png", seed=22)
    run = mathpix_nb(
        "ocr",
        str(a),
        str(b),
        "--formats",
        "text,data,html",
        "--option",
        'data_options={"include_asciimath": true}',
        "--no-progress",
        "--poll-interval",
        "0.05",
    )
    assert run.returncode == 0, run.stderr
    df = pd.read_csv(io.StringIO(run.stdout))
    assert {"ocr_data", "ocr_html"} <= set(df.columns)
    for cell in df["ocr_data"]:
        assert json.loads(cell)[0]["type"] == "asciimath"
    assert df["ocr_html"].str.startswith("<div>").all()


def test_a_corrupt_journal_is_set_aside_and_the_run_goes_on(
    mathpix_nb: Callable[..., Run], make_image: Callable[..., Path], tmp_path: Path
) -> None:
    a, b = make_image("a.png", seed=23), make_image("b.png", seed=24)
    journal = tmp_path / "j.sqlite3"
    journal.write_text("not a db" * 200)
    run = mathpix_nb(
        "ocr", str(a), str(b), "--journal", str(journal), "--no-progress", "--poll-interval", "0.05"
    )
    assert run.returncode == 0, run.stderr
    assert "set aside" in run.stderr and str(journal) in run.stderr
    assert list(tmp_path.glob("j.sqlite3.corrupt-*"))
