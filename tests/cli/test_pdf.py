"""``mathpix-nb pdf``: a PDF to a file or stdout with a pages-done progress bar, and resume."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mathpix_nb import Mathpix
from mathpix_nb.server import LocalServer

from .conftest import Run

pytestmark = pytest.mark.timeout(120)


def test_pdf_to_docx_with_progress(
    mathpix_nb: Callable[..., Run], make_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "paper.docx"
    run = mathpix_nb("pdf", str(make_pdf(3)), "-o", str(out), "--poll-interval", "0.05")
    assert run.returncode == 0, run.stderr
    assert "3/3 pages" in run.stderr and "--resume" in run.stderr
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as docx:
        body = docx.read("word/document.xml").decode()
    assert "echo pdf page 3" in body


def test_progress_is_fed_by_each_status(
    mathpix_nb: Callable[..., Run], cli_server: LocalServer, make_pdf: Callable[..., Path]
) -> None:
    """The bar is drawn from the client's pdf_wait statuses: pages done only grow, to 5/5."""
    cli_server.configure(latency_base=0.04)  # each page takes a while: progress shows
    try:
        run = mathpix_nb("pdf", str(make_pdf(5)), "-o", "p.mmd", "--poll-interval", "0.02")
    finally:
        cli_server.configure(latency_base=0.0)
    assert run.returncode == 0, run.stderr
    done = [int(n) for n in re.findall(r"\] (\d)/5 pages", run.stderr)]
    assert done == sorted(done) and len(set(done)) >= 3 and done[-1] == 5, run.stderr


def test_timeout_is_said_in_shell_words(
    mathpix_nb: Callable[..., Run], cli_server: LocalServer, make_pdf: Callable[..., Path]
) -> None:
    cli_server.configure(pdf_step_delay=2.0)
    try:
        run = mathpix_nb(
            "pdf", str(make_pdf(1)), "-o", "p.mmd", "--poll-interval", "0.05", "--timeout", "0.3"
        )
    finally:
        cli_server.configure(pdf_step_delay=0.02)
    assert run.returncode == 1, run.stderr
    assert "not ready within --timeout 0.3 s" in run.stderr
    assert "pick it up again with: mathpix-nb pdf --resume " in run.stderr
    assert "pdf_wait(" not in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("suffix", [".mmd", ".md", ".html", ".tex.zip"])
def test_pdf_output_formats(
    mathpix_nb: Callable[..., Run], make_pdf: Callable[..., Path], tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"paper{suffix}"
    run = mathpix_nb(
        "pdf", str(make_pdf(2)), "-o", str(out), "--poll-interval", "0.05", "--no-progress"
    )
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    if suffix == ".tex.zip":
        with zipfile.ZipFile(io.BytesIO(data)) as tex:
            assert any(n.endswith(".tex") for n in tex.namelist())
    else:
        assert b"echo pdf page 2" in data


def test_pdf_to_stdout_and_json_summary(
    mathpix_nb: Callable[..., Run], make_pdf: Callable[..., Path]
) -> None:
    run = mathpix_nb("pdf", str(make_pdf(2)), "--poll-interval", "0.05", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "echo pdf page 1" in run.stdout and "echo pdf page 2" in run.stdout
    summary = mathpix_nb(
        "pdf", str(make_pdf(2)), "-o", "p.mmd", "--json", "--poll-interval", "0.05"
    )
    body = json.loads(summary.stdout)
    assert body["status"] == "completed" and body["pages"] == 2 and body["pdf_id"]


def test_resume_a_submitted_pdf(
    mathpix_nb: Callable[..., Run],
    cli_server: LocalServer,
    make_pdf: Callable[..., Path],
    tmp_path: Path,
) -> None:
    with Mathpix(cli_server.app_id, cli_server.app_key, base_url=cli_server.url) as client:
        pdf_id = client.pdf_submit(make_pdf(4))
    uploads = sum(1 for r in cli_server.log if r.endpoint == "/v3/pdf" and r.method == "POST")
    out = tmp_path / "resumed.mmd"
    run = mathpix_nb("pdf", "--resume", pdf_id, "-o", str(out), "--poll-interval", "0.05")
    assert run.returncode == 0, run.stderr
    assert "echo pdf page 4" in out.read_text()
    assert "4/4 pages" in run.stderr
    posts = sum(1 for r in cli_server.log if r.endpoint == "/v3/pdf" and r.method == "POST")
    assert posts == uploads  # nothing uploaded again


def test_a_pdf_mathpix_cannot_read_exits_1(mathpix_nb: Callable[..., Run], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"this is not a pdf")
    run = mathpix_nb("pdf", str(bad), "-o", str(tmp_path / "x.mmd"), "--poll-interval", "0.05")
    assert run.returncode == 1
    assert "failed" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.mmd").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "--resume"),
        (["--resume", "nope", "-o", "x.mmd"], "does not know this PDF"),
        (["doc.pdf", "-o", "x.odt"], "suffix picks the format"),
        (["gone.pdf"], "no such file"),
        (["doc.pdf", "-o", "x.docx", "--timeout", "-1"], "--timeout"),
        (["doc.pdf", "-o", "."], "directory"),
        (["doc.pdf", "--option", "outputz=1"], "unknown option"),
        (["doc.pdf", "-o", "-", "--option", "rm_spaces=1"], "rm_spaces"),
    ],
)
def test_pdf_bad_usage_exits_2(
    mathpix_nb: Callable[..., Run],
    cli_server: LocalServer,
    make_pdf: Callable[..., Path],
    args: list[str],
    needle: str,
) -> None:
    make_pdf(1, name="doc.pdf")
    before = sum(1 for r in cli_server.log if r.method == "POST")
    run = mathpix_nb("pdf", *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert needle in run.stderr and "Traceback" not in run.stderr
    assert sum(1 for r in cli_server.log if r.method == "POST") == before
