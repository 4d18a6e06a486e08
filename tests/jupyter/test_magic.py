"""``%mathpix`` / ``%%mathpix`` through a real IPython shell, against the echo server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.getipython import get_ipython as running_shell
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

from mathpix_nb.jupyter import CropPanel

from .conftest import make_png


@pytest.fixture
def ip(client: Any, local_server: Any) -> Iterator[Any]:
    # The test shell is started once per process; later calls find it running.
    shell = get_ipython() or running_shell()
    shell.run_line_magic("load_ext", "mathpix_nb")
    # Format rich output like a kernel does (the terminal test shell shows text/plain only).
    active = list(shell.display_formatter.active_types)
    shell.display_formatter.active_types = [*active, "text/markdown"]
    shell.user_ns["client"] = client
    from mathpix_nb import Mathpix

    urls = dict(local_server.urls)
    auth = {"app_id": local_server.app_id, "app_key": local_server.app_key, "region_urls": urls}
    with Mathpix(region="eu", **auth) as eu:
        shell.user_ns["eu_client"] = eu
        yield shell
    shell.run_line_magic("unload_ext", "mathpix_nb")
    shell.display_formatter.active_types = active
    for name in ("client", "eu_client", "r"):
        shell.user_ns.pop(name, None)


def test_line_magic_returns_the_result(ip: Any, png_path: Path) -> None:
    result = ip.run_line_magic("mathpix", f"{png_path} --client client")
    sha = hashlib.sha256(png_path.read_bytes()).hexdigest()[:12]
    assert result.text == f"echo 240x160 sha:{sha}"


def test_crop_formats_and_region_options(ip: Any, png_path: Path, local_server: Any) -> None:
    local_server.clear_log()
    result = ip.run_line_magic(
        "mathpix", f"{png_path} --client client --crop 10,20,100,50 -f text,latex_styled"
    )
    assert result.text.startswith("echo 100x50 ")
    assert result.latex_styled == "\\text{" + result.text + "}"
    assert local_server.log[-1].endpoint.endswith("text")
    eu = ip.run_line_magic("mathpix", f"{png_path} --client eu_client --region eu")
    assert eu.text == ip.run_line_magic("mathpix", f"{png_path} --client client").text
    assert local_server.log[-2].region == "eu" and local_server.log[-1].region == "global"


def test_paths_with_spaces_can_be_quoted(ip: Any, tmp_path: Path) -> None:
    path = tmp_path / "my scan.png"
    path.write_bytes(make_png(64, 48))
    result = ip.run_line_magic("mathpix", f'"{path}" --client client')
    assert result.text.startswith("echo 64x48 ")


def test_cell_magic_reads_every_listed_image(ip: Any, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(make_png(64, 48))
    b.write_bytes(make_png(80, 40))
    cell = f"# two pages\n{a}\n\n{b}\n"
    results = ip.run_cell_magic("mathpix", "--client client", cell)
    assert [r.text.split()[1] for r in results] == ["64x48", "80x40"]
    assert results.sources == [str(a), str(b)]
    assert "**" + str(a) + "**" in results._repr_markdown_()


def test_bare_magic_opens_the_panel(ip: Any) -> None:
    panel = ip.run_line_magic("mathpix", "--client client")
    assert isinstance(panel, CropPanel)
    panel.close()


def test_assigned_result_is_not_displayed(ip: Any, png_path: Path) -> None:
    with capture_output() as assigned:
        ip.run_cell(f"r = %mathpix {png_path} --client client", store_history=True)
    # IPython's rule: an assignment shows nothing.
    assert assigned.outputs == [] and assigned.stdout == ""
    assert ip.user_ns["r"].text.startswith("echo 240x160")


def test_last_line_shows_the_result_once(ip: Any, png_path: Path) -> None:
    with capture_output() as last:
        result = ip.run_cell(f"%mathpix {png_path} --client client", store_history=True)
    assert result.success
    # Shown by IPython as the cell's value (the terminal test shell prints its text/plain).
    assert last.outputs == []
    assert last.stdout.count("OcrResult(text='echo 240x160") == 1


def test_trailing_semicolon_silences_and_never_reaches_the_parser(
    ip: Any, png_path: Path, tmp_path: Path, local_server: Any
) -> None:
    local_server.clear_log()
    with capture_output() as quiet:
        result = ip.run_cell(f"%mathpix {png_path} --client client;", store_history=True)
    assert result.success, result.error_in_exec
    assert quiet.stdout == "" and quiet.outputs == []
    assert len(local_server.log) == 1  # it did run, with the client named 'client'
    assert ip.run_line_magic("mathpix", f"{png_path} --client client ;") is None
    # The cell form too: the ';' after the last image is not part of its name.
    a = tmp_path / "a.png"
    a.write_bytes(make_png(64, 48))
    with capture_output() as cell_quiet:
        result = ip.run_cell(f"%%mathpix --client client\n{a};\n", store_history=True)
    assert result.success, result.error_in_exec
    assert cell_quiet.stdout == ""


def test_user_errors_are_one_line_with_the_fix(ip: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with capture_output() as out:
        result = ip.run_cell(f"%mathpix {missing} --client client", store_history=True)
    assert not result.success
    shown = (out.stdout + out.stderr).strip()
    assert "Traceback" not in shown and "----" not in shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("ImageError: Image file not found") and "Fix:" in lines[0]
    assert "--debug" in lines[0]
    # The exception keeps its type for code that catches it.
    assert type(result.error_in_exec).__name__ == "ImageError"


def test_debug_or_verbose_xmode_shows_the_traceback(ip: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with capture_output() as debug:
        ip.run_cell(f"%mathpix {missing} --client client --debug", store_history=True)
    assert "Traceback" in debug.stdout + debug.stderr
    ip.run_line_magic("xmode", "verbose")
    try:
        with capture_output() as verbose:
            ip.run_cell(f"%mathpix {missing} --client client", store_history=True)
    finally:
        ip.run_line_magic("xmode", "context")
    assert "Traceback" in verbose.stdout + verbose.stderr


def test_cell_results_display_as_one_view_under_their_sources(ip: Any, tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(make_png(64, 48))
    results = ip.run_cell_magic("mathpix", "--client client", f"{a}\n")
    bundle = results._repr_mimebundle_()
    assert bundle["text/markdown"].startswith(f"**{a}**")


def test_bad_arguments_say_how_to_fix_them(ip: Any, png_path: Path) -> None:
    with pytest.raises(ValueError, match="four whole numbers x,y,w,h"):
        ip.run_line_magic("mathpix", f"{png_path} --client client --crop 1,2,3")
    with pytest.raises(ValueError, match="unknown \\['pdf'\\]"):
        ip.run_line_magic("mathpix", f"{png_path} --client client --formats pdf")
    with pytest.raises(ValueError, match="no such variable"):
        ip.run_line_magic("mathpix", f"{png_path} --client nobody")
    with pytest.raises(ValueError, match="one image path or URL per line"):
        ip.run_cell_magic("mathpix", "--client client", "\n# nothing\n")


def test_help_documents_every_option(ip: Any) -> None:
    doc = ip.find_line_magic("mathpix").__doc__
    for needle in ("--formats", "--region", "--crop", "--client", "%%mathpix", "OcrResult"):
        assert needle in doc


def test_unload_removes_the_magics(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "mathpix_nb")
    assert ip.find_line_magic("mathpix") is None
    assert ip.find_cell_magic("mathpix") is None
    ip.run_line_magic("load_ext", "mathpix_nb")
    assert ip.find_line_magic("mathpix") is not None


def test_crop_of_an_image_given_by_url_is_cut_in_the_kernel(ip: Any, local_server: Any) -> None:
    url = local_server.host_file(make_png(300, 200), name="page.png")
    result = ip.run_line_magic("mathpix", f"{url} --client client --crop 0,20,150,70")
    assert result.text.startswith("echo 150x70 ")
