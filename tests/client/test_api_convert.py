"""``client.convert()`` (v3/converter) and results as documents (``OcrResult.to_docx()``,
``PdfResult.to_docx()`` ...) against the local server over loopback, sync and async. The
server makes real files (docx, tex.zip, pdf, ...), read back here with the standard library."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb import (
    AsyncMathpix,
    ConfigurationError,
    ConversionResult,
    Event,
    FakeClock,
    Mathpix,
    NotAllowedError,
    OcrResult,
    OptionError,
    PdfError,
    PdfResult,
)
from mathpix_nb.server import LocalServer

from ._api_support import Recorder, close_http, pdf_bytes
from .conftest import keys, png_bytes, text_image

pytestmark = pytest.mark.anyio

MMD = "# Results\n\nThe area is \\( \\pi r^{2} \\) and\n\n\\[\nE = m c^{2}\n\\]\n"


@pytest.fixture(scope="module")
def conv_server() -> Any:
    with LocalServer(engine="echo", regions=("global", "eu"), pdf_step_delay=0.01) as server:
        yield server


@pytest.fixture
def cs(conv_server: Any) -> Any:
    defaults = dict(
        failing_conversions=(),
        conversion_wait=5.0,
        pdf_step_delay=0.01,
        pdf_not_ready_status=404,
        faults=None,
    )
    conv_server.configure(**defaults)
    conv_server.clear_log()
    yield conv_server
    conv_server.configure(**defaults)


def docx_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("word/document.xml").decode()


def tex_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".tex")]
        return archive.read(name).decode()


# -- client.convert --------------------------------------------------------------------------
async def test_convert_makes_real_files_in_every_asked_format(make, kind, cs, tmp_path):
    api = make(**keys(cs))
    result = await api.call("convert", MMD, formats=("docx", "tex", "md", "html", "pdf"))
    assert isinstance(result, ConversionResult) and result.ok
    assert sorted(result.outputs) == ["docx", "html", "md", "pdf", "tex.zip"]  # tex -> tex.zip
    assert "Results" in docx_text(result.outputs["docx"])
    assert "\\section" in tex_text(result.outputs["tex.zip"]) or "Results" in tex_text(
        result.outputs["tex.zip"]
    )
    assert "Results" in result.text("md")
    assert result.outputs["pdf"].startswith(b"%PDF")
    saved = result.save(tmp_path / "out", stem="report")
    assert sorted(p.name for p in saved.values()) == [
        "report.docx",
        "report.html",
        "report.md",
        "report.pdf",
        "report.tex.zip",
    ]
    assert saved["docx"].read_bytes() == result.outputs["docx"]
    assert next(r.endpoint for r in cs.log) == "/v3/converter"
    assert {r.auth_mode for r in cs.log} == {"keys"}


async def test_convert_polls_on_the_client_clock(make, cs):
    """Polls are ``Sleep(..., "poll")`` steps on the client's clock: a FakeClock makes them
    instant and records them; observers see each wait with reason "poll"."""
    cs.configure(pdf_step_delay=0.2)  # the conversion takes a while at the server
    clock = FakeClock()
    events: list[Event] = []
    api = make(**keys(cs), clock=clock, observers=[events.append])
    result = await api.call("convert", MMD, formats=["md"], timeout=10_000)
    assert "Results" in result.text("md")
    waits = [e for e in events if e.kind == "wait"]
    assert waits and all(e.reason == "poll" for e in waits)
    assert clock.sleeps == [e.delay for e in waits]
    polls = [r for r in cs.log if r.endpoint == "/v3/converter/{conversion_id}"]
    assert len(polls) >= 2  # it asked again while the server was converting


async def test_convert_step_by_step_and_delete(make, kind, cs):
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(cs), http_client=http)
    conversion_id = await api.call(
        "convert_submit", MMD, ["docx"], conversion_options={"docx": {"font": "Arial"}}
    )
    (body,) = recorder.bodies("/v3/converter")
    assert body == {
        "mmd": MMD,
        "formats": {"docx": True},
        "conversion_options": {"docx": {"font": "Arial"}},
    }
    data = await api.call("convert_download", conversion_id, "docx")  # waits at the server
    assert "Results" in docx_text(data)
    status = await api.call("convert_status", conversion_id)
    assert status["conversion_status"]["docx"]["status"] == "completed"
    assert await api.call("convert_download", conversion_id, "mmd") == MMD.encode()
    gone = await api.call("convert_delete", conversion_id)
    assert gone["deleted_at"]
    with pytest.raises(PdfError) as caught:
        await api.call("convert_status", conversion_id)
    assert caught.value.error_id == "cnv_unknown_id"
    await close_http(http)


@pytest.mark.parametrize("status", [404, 202])
async def test_a_download_not_ready_says_so(make, cs, status):
    cs.configure(conversion_wait=0, pdf_step_delay=0.5, pdf_not_ready_status=status)
    api = make(**keys(cs))
    conversion_id = await api.call("convert_submit", MMD, ["docx"])
    with pytest.raises(PdfError, match="still converting") as caught:
        await api.call("convert_download", conversion_id, "docx")
    assert caught.value.error_id == "not_ready"
    # convert() itself rides over not-ready answers
    done = await api.call("convert", MMD, formats=["docx"], poll_interval=0.05)
    assert "Results" in docx_text(done.outputs["docx"])


async def test_a_failed_format_raises_or_is_kept(make, kind, cs):
    cs.configure(failing_conversions=("docx",))
    api = make(**keys(cs))
    with pytest.raises(PdfError, match=r"to docx failed.*errors='keep'") as caught:
        await api.call("convert", MMD, formats=["docx", "md"], poll_interval=0.05)
    assert caught.value.error_id == "conversion_error"
    kept = await api.call("convert", MMD, formats=["docx", "md"], errors="keep", poll_interval=0.05)
    assert not kept.ok and sorted(kept.outputs) == ["md"]
    assert kept.errors["docx"]["id"] == "conversion_error"
    assert "errors=['docx']" in repr(kept)


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"formats": []}, ConfigurationError, "formats is empty"),
        ({"formats": ["docz"]}, ConfigurationError, "Did you mean 'docx'"),
        ({"formats": ["mmd"]}, ConfigurationError, "'mmd' is the input"),
        ({"mmd": b"bytes"}, ConfigurationError, "must be the Mathpix Markdown text"),
        ({"mmd": "  "}, ConfigurationError, "mmd is empty"),
        (
            {"conversion_options": {"md": {}}},
            OptionError,
            "for a format not requested",
        ),
        (
            {"conversion_options": {"docx": {"fontsize": 24}}},
            OptionError,
            "Did you mean 'fontSize'",
        ),
        (
            {"conversion_options": {"docx": {"orientation": "sideways"}}},
            OptionError,
            "'portrait' or 'landscape'",
        ),
        ({"mmd": "x" * (10 * 1024 * 1024 + 1)}, ConfigurationError, "over v3/converter's 10 MB"),
        ({"errors": "ignore"}, ConfigurationError, "'raise' or 'keep'"),
    ],
)
async def test_bad_conversion_requests_fail_before_sending(make, cs, kwargs, error, says):
    api = make(**keys(cs))
    args = {"mmd": MMD, "formats": ["docx"], **kwargs}
    with pytest.raises(error) as caught:
        await api.call("convert", args.pop("mmd"), **args)
    assert says in str(caught.value)
    assert not cs.log


async def test_conversions_need_keys(make, cs):
    token = await make(**keys(cs)).call("app_token", 60)
    api = make(app_token=token.app_token, region_urls=cs.urls)
    with pytest.raises(NotAllowedError, match="convert"):
        await api.call("convert", MMD, formats=["docx"])
    assert [r.endpoint for r in cs.log] == ["/v3/app-tokens"]


async def test_convert_in_the_eu_stays_in_the_eu(make, cs):
    api = make(**keys(cs, region="eu"))
    await api.call("convert", MMD, formats=["md"], poll_interval=0.05)
    assert {r.region for r in cs.log} == {"eu"}


# -- results as documents ----------------------------------------------------------------------
async def test_an_ocr_result_becomes_a_document(make, kind, cs, tmp_path):
    api = make(**keys(cs))
    result = await api.text(text_image())
    assert isinstance(result, OcrResult)
    if kind == "sync":
        docx = result.to_docx(tmp_path / "page.docx")
        tex = result.to_tex(tmp_path)  # a folder: named after the request id
        data = result.to_bytes("md")
    else:
        docx = await result.ato_docx(tmp_path / "page.docx")
        tex = await result.ato_tex(tmp_path)
        data = await result.ato_bytes("md")
    assert docx == tmp_path / "page.docx" and result.text in docx_text(docx.read_bytes())
    assert tex.name == f"{result.request_id}.tex.zip"
    assert result.text in tex_text(tex.read_bytes())
    assert result.text.encode() in data
    bodies = [r for r in cs.log if r.endpoint == "/v3/converter"]
    assert len(bodies) == 3  # each through v3/converter
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


async def test_results_stay_picklable_and_secret_free(make, kind, cs, tmp_path):
    api = make(**keys(cs))
    result = await api.text(png_bytes(text_image()))
    blob = pickle.dumps(result)
    assert cs.app_key.encode() not in blob and cs.app_id.encode() not in blob
    copy = pickle.loads(blob)
    assert copy == result
    with pytest.raises(ConfigurationError, match="pass client="):
        copy.to_docx(tmp_path / "a.docx")
    other: Any = Mathpix(**keys(cs)) if kind == "sync" else AsyncMathpix(**keys(cs))
    try:
        if kind == "sync":
            path = copy.to_docx(tmp_path / "a.docx", client=other)
        else:
            path = await copy.ato_docx(tmp_path / "a.docx", client=other)
        assert path.stat().st_size > 0
    finally:
        other.close() if kind == "sync" else await other.aclose()


async def test_the_wrong_or_a_closed_client_is_named(cs, tmp_path):
    async with AsyncMathpix(**keys(cs)) as aclient:
        result = await aclient.text(text_image())
        with pytest.raises(ConfigurationError, match="made by AsyncMathpix: use the ato_"):
            result.to_docx(tmp_path / "x.docx")
    with Mathpix(**keys(cs)) as client:
        made = client.text(text_image())
        with pytest.raises(ConfigurationError, match="client= must be AsyncMathpix"):
            await made.ato_docx(tmp_path / "x.docx", client=client)
    with pytest.raises(ConfigurationError, match="is closed"):
        made.to_docx(tmp_path / "x.docx")
    assert not (tmp_path / "x.docx").exists()


async def test_a_pdf_result_uses_its_outputs_then_its_pdf_then_its_mmd(make, kind, cs, tmp_path):
    api = make(**keys(cs))
    with_docx = await api.call("pdf", pdf_bytes(2), outputs=("mmd", "docx"), poll_interval=0.05)
    assert isinstance(with_docx, PdfResult)
    cs.clear_log()
    path = (
        with_docx.to_docx(tmp_path / "a.docx")
        if kind == "sync"
        else await with_docx.ato_docx(tmp_path / "a.docx")
    )
    assert path.read_bytes() == with_docx.outputs["docx"]
    assert not cs.log  # already downloaded: nothing sent

    plain = await api.call("pdf", pdf_bytes(1), poll_interval=0.05)
    cs.clear_log()
    data = plain.to_bytes("pptx") if kind == "sync" else await plain.ato_bytes("pptx")
    assert data.startswith(b"PK")
    assert [r.endpoint for r in cs.log] == ["/v3/pdf/{pdf_id}"]  # the PDF's own output

    await api.call("pdf_delete", plain.pdf_id)
    cs.clear_log()
    data = plain.to_bytes("tex") if kind == "sync" else await plain.ato_bytes("tex")
    assert "echo pdf page 1" in tex_text(data)  # gone at Mathpix: its mmd was converted
    assert "/v3/converter" in [r.endpoint for r in cs.log]


def test_a_pdf_result_with_options_converts_its_mmd(cs, tmp_path):
    recorder = Recorder()
    with Mathpix(**keys(cs), http_client=recorder.sync_client()) as client:
        result = client.pdf(pdf_bytes(1), outputs=("mmd", "docx"), poll_interval=0.05)
        path = result.to_docx(tmp_path / "big.docx", conversion_options={"docx": {"fontSize": 28}})
        assert path.exists()
        (body,) = recorder.bodies("/v3/converter")
        assert body["conversion_options"] == {"docx": {"fontSize": 28}}
        assert body["mmd"] == result.mmd


async def test_nothing_to_convert_is_said(make, cs, tmp_path):
    api = make(**keys(cs))
    empty = OcrResult(raw={"text": ""}, source="blank.png")
    client = api.client
    with pytest.raises(ConfigurationError, match="no text to convert"):
        if isinstance(client, Mathpix):
            empty.to_docx(tmp_path / "e.docx", client=client)
        else:
            await empty.ato_docx(tmp_path / "e.docx", client=client)
    assert not Path(tmp_path / "e.docx").exists() and not cs.log
