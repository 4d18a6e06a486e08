"""Conversions are real files: DOCX / PPTX / XLSX open in python-docx / python-pptx /
openpyxl, PDFs in pdfium, zips hold the documents. Made from a PDF's MMD (requested or on
demand) and from ``POST v3/converter``; each names the converter that made it."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from mathpix_nb.server import EchoEngine, LocalServer
from mathpix_nb.server._convert import available_converters

from .test_pdf_batch import make_pdf

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")
openpyxl = pytest.importorskip("openpyxl")
pdfium = pytest.importorskip("pypdfium2")

PAGE_MMD = [
    "\\section*{Results}",
    "The energy \\(E=m c^{2}\\) is conserved.",
    "",
    "\\[",
    "\\frac{a}{b}=\\sum_{i=1}^{n} x_{i}",
    "\\]",
    "",
    "| item | value |",
    "|---|---|",
    "| alpha | 1.5 |",
    "| beta | 2 |",
]
MMD = "\\title{Local Paper}\n\n" + "\n".join(PAGE_MMD) + "\n\n- first point\n- second point\n"
ALL = (
    "docx",
    "pptx",
    "xlsx",
    "pdf",
    "latex.pdf",
    "tex.zip",
    "html",
    "md",
    "md.zip",
    "mmd.zip",
    "html.zip",
)


class PaperEngine(EchoEngine):
    """The echo engine, with PDF pages that read as a small paper (heading, math, table)."""

    def recognize_pdf_page(
        self, pdf: bytes, page: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        out = super().recognize_pdf_page(pdf, page, options)
        box = out["lines"][0]["cnt"]
        out["lines"] = [{"text": t, "confidence": 1.0, "cnt": box} for t in PAGE_MMD]
        return out


def check_file(fmt: str, data: bytes) -> str:
    """Open ``data`` as ``fmt`` with a reader nobody here wrote; return its text."""
    if fmt in ("docx", "pptx", "xlsx"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # every part is well-formed XML
            for name in zf.namelist():
                if name.endswith((".xml", ".rels")):
                    ET.fromstring(zf.read(name))
    if fmt == "docx":
        document = docx.Document(io.BytesIO(data))
        texts = [f"{p.style.name}: {p.text}" for p in document.paragraphs]
        texts += [
            cell.text for table in document.tables for row in table.rows for cell in row.cells
        ]
        return "\n".join(texts)
    if fmt == "pptx":
        deck = pptx.Presentation(io.BytesIO(data))
        shapes = [sh for slide in deck.slides for sh in slide.shapes]
        texts = [sh.text_frame.text for sh in shapes if sh.has_text_frame]
        tables = [sh.table for sh in shapes if sh.has_table]
        assert tables, "the table became a PowerPoint table"
        texts += [cell.text for table in tables for row in table.rows for cell in row.cells]
        return "\n".join(texts)
    if fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(data))
        rows = list(book.worksheets[0].values)
        assert rows[:2] == [("item", "value"), ("alpha", 1.5)]  # numbers stay numbers
        return str(rows)
    if fmt.endswith("pdf"):
        doc = pdfium.PdfDocument(data)
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    if fmt.endswith("zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            inner = [n for n in zf.namelist() if not n.endswith("/")]
            assert len(inner) == 1 and inner[0].endswith("." + fmt.removesuffix(".zip"))
            return zf.read(inner[0]).decode()
    return data.decode()


def check_paper_docx(data: bytes) -> None:
    """The paper's structure survived: styles, a real table, Office Math."""
    document = docx.Document(io.BytesIO(data))
    assert "Heading 1: Results" in check_file("docx", data)
    assert document.tables[0].cell(1, 0).text == "alpha"
    xml = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml").decode()
    assert "<m:oMath>" in xml and "<m:f>" in xml and "<m:nary>" in xml  # editable math


def wait(
    http: httpx.Client, keys: dict[str, str], path: str, done: Any, timeout: float = 15
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(path, headers=keys).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.03)


def test_every_conversion_of_a_pdf_is_a_real_file():
    with (
        LocalServer(engine=PaperEngine(), pdf_step_delay=0.01, converter_backend="builtin") as srv,
        httpx.Client(base_url=srv.url, timeout=30) as http,
    ):
        keys = srv.credentials()
        r = http.post(
            "/v3/pdf",
            headers=keys,
            json={
                "url": srv.host_file(make_pdf(1), "paper.pdf"),
                "conversion_formats": {fmt: True for fmt in ALL},
            },
        )
        pdf_id = r.json()["pdf_id"]
        conv = wait(
            http,
            keys,
            f"/v3/converter/{pdf_id}",
            lambda b: b.get("status") == "completed",
        )
        assert {f: s["status"] for f, s in conv["conversion_status"].items()} == dict.fromkeys(
            ALL, "completed"
        )
        for fmt in ALL:
            got = http.get(f"/v3/pdf/{pdf_id}.{fmt}", headers=keys)
            assert got.status_code == 200, fmt
            assert got.headers["x-mathpix-converter"] == "mathpix_nb builtin"
            text = check_file(fmt, got.content)
            assert "alpha" in text and (fmt == "xlsx" or "Results" in text), fmt
        check_paper_docx(http.get(f"/v3/pdf/{pdf_id}.docx", headers=keys).content)


def test_formats_not_requested_are_made_on_demand(server, http, keys):
    """Mathpix's JS CLI: POST v3/pdf-file with the file alone and app_key alone, poll,
    then GET .docx / .tex / .mmd without ever asking for a conversion."""
    key = {"app_key": server.app_key}
    r = http.post("/v3/pdf-file", headers=key, files={"file": ("paper.pdf", make_pdf(2))})
    pdf_id = r.json()["pdf_id"]
    wait(http, key, f"/v3/pdf/{pdf_id}", lambda b: b["status"] == "completed")
    document = http.get(f"/v3/pdf/{pdf_id}.docx", headers=key)
    assert document.status_code == 200
    assert document.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.wordprocessingml"
    )
    assert "echo pdf page 2" in "\n".join(
        p.text for p in docx.Document(io.BytesIO(document.content)).paragraphs
    )
    tex = http.get(f"/v3/pdf/{pdf_id}.tex", headers=key)  # the CLI saves it as .tex.zip
    with zipfile.ZipFile(io.BytesIO(tex.content)) as zf:
        source = zf.read(f"{pdf_id}/{pdf_id}.tex").decode()
    assert "\\begin{document}" in source and "echo pdf page 1" in source
    assert http.get(f"/v3/pdf/{pdf_id}.mmd", headers=key).text.startswith("echo pdf page 1")
    status = http.get(f"/v3/pdf/{pdf_id}", headers=key).json()
    assert status["conversion_status"]["docx"]["status"] == "completed"
    unknown = http.get(f"/v3/pdf/{pdf_id}.exe", headers=key)
    assert (
        unknown.status_code == 404 and unknown.json()["error_info"]["id"] == "opts_unknown_format"
    )


def test_on_demand_can_be_switched_off(png):
    with (
        LocalServer(on_demand_conversions=False, pdf_step_delay=0.01) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        keys = srv.credentials()
        pdf_id = http.post("/v3/pdf", headers=keys, files={"file": ("a.pdf", make_pdf(1))}).json()[
            "pdf_id"
        ]
        wait(http, keys, f"/v3/pdf/{pdf_id}", lambda b: b["status"] == "completed")
        r = http.get(f"/v3/pdf/{pdf_id}.docx", headers=keys)
        assert r.status_code == 404 and r.json()["error_info"]["id"] == "file_missing"


def test_converter_endpoint_as_mathpix_cli_sends_it(server, http, keys):
    server.configure(converter_backend="builtin")  # checks our writers' structure
    r = http.post(
        "/v3/converter",
        headers={**keys, "Accept": "application/json, */*"},
        json={"mmd": MMD, "formats": {"docx": True, "xlsx": True}, "conversion_options": {}},
    )
    conversion_id = r.json()["conversion_id"]
    path = f"/v3/converter/{conversion_id}"
    early = http.get(f"{path}.docx", headers=keys)
    assert early.status_code in (200, 404)  # 404 + Retry-After while processing
    if early.status_code == 404:
        assert early.headers["retry-after"] == "1"
    status = wait(
        http,
        keys,
        path,
        lambda b: all(s["status"] == "completed" for s in b["conversion_status"].values()),
    )
    assert status["status"] == "completed" and set(status["conversion_status"]) == {"docx", "xlsx"}
    made = http.get(f"{path}.docx", headers=keys).content
    check_paper_docx(made)
    assert "List Paragraph: second point" in check_file("docx", made)
    check_file("xlsx", http.get(f"{path}.xlsx", headers=keys).content)
    assert http.get(f"{path}.mmd", headers=keys).text == MMD
    assert "Results" in check_file(
        "pdf", http.get(f"{path}.pdf", headers=keys).content
    )  # on demand
    listed = http.get("/v3/converter-results", headers={"app_key": server.app_key}).json()
    assert listed["documents"][0]["id"] == conversion_id
    deleted = http.delete(path, headers=keys)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]
    assert http.get(f"{path}.docx", headers=keys).status_code == 404
    assert http.delete(path, headers=keys).status_code == 404
    bad = http.post("/v3/converter", headers=keys, json={"mmd": "x", "formats": {"odt": True}})
    assert bad.json()["error_info"]["id"] == "opts_unknown_format"
    missing = http.post("/v3/converter", headers=keys, json={"formats": {"docx": True}})
    assert missing.json()["error_info"]["id"] == "opts_value_out_of_range"


def test_not_ready_downloads_can_answer_202(png):
    """The Go CLI waits on 202 + Retry-After (mpxpy on 404): both are offered."""
    with (
        LocalServer(pdf_not_ready_status=202, pdf_step_delay=0.3, conversion_wait=0) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        keys = srv.credentials()
        conv = http.post(
            "/v3/converter", headers=keys, json={"mmd": MMD, "formats": {"docx": True}}
        )
        r = http.get(f"/v3/converter/{conv.json()['conversion_id']}.docx", headers=keys)
        assert r.status_code == 202 and r.headers["retry-after"] == "1"


@pytest.mark.skipif("docx" not in available_converters(), reason="pandoc is not installed")
def test_pandoc_makes_docx_when_installed(server, http, keys):
    conv = http.post("/v3/converter", headers=keys, json={"mmd": MMD, "formats": {"docx": True}})
    path = f"/v3/converter/{conv.json()['conversion_id']}"
    status = wait(
        http, keys, path, lambda b: b["conversion_status"]["docx"]["status"] != "processing"
    )
    assert status["conversion_status"]["docx"]["converter"].startswith("pandoc")
    got = http.get(f"{path}.docx", headers=keys)
    assert got.headers["x-mathpix-converter"].startswith("pandoc")
    assert "Results" in "\n".join(p.text for p in docx.Document(io.BytesIO(got.content)).paragraphs)


# --------------------------------------------------------------------------- foreign clients


mathpix_client = pytest.importorskip("mpxpy.mathpix_client")


def test_mpxpy_converter_calls(server):
    server.configure(converter_backend="builtin")
    client = mathpix_client.MathpixClient(
        app_id=server.app_id, app_key=server.app_key, api_url=server.url
    )
    conversion = client.conversion_new(
        mmd=MMD, convert_to_docx=True, convert_to_md=True, convert_to_pptx=True
    )
    assert conversion.wait_until_complete(timeout=10)
    check_paper_docx(conversion.to_docx_bytes())
    assert "Results" in check_file("pptx", conversion.to_pptx_bytes())
    assert conversion.to_md_text().startswith("# Local Paper")
    assert conversion.to_mmd_text() == MMD
    check_file("xlsx", conversion.to_xlsx_bytes())  # not requested: made on demand
    assert "Results" in check_file("latex.pdf", conversion.to_latex_pdf_bytes())
    found = client.query_converter_results()["documents"]
    assert [d["id"] for d in found] == [conversion.conversion_id]
    assert client.conversion_delete(conversion.conversion_id)["deleted_at"]


def test_mpxpy_pdf_to_docx(server, tmp_path):
    client = mathpix_client.MathpixClient(
        app_id=server.app_id, app_key=server.app_key, api_url=server.url
    )
    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf(1))
    pdf = client.pdf_new(file_path=str(path), convert_to_docx=True)
    assert pdf.wait_until_complete(timeout=10)
    assert "echo pdf page 1" in check_file("docx", pdf.to_docx_bytes())
    assert pdf.to_html_bytes().startswith(b"<!DOCTYPE html>")  # not requested: on demand
    deleted = client.pdf_delete(pdf.pdf_id)
    assert deleted["deleted_at"] and deleted["version"] == "echo-1"


def test_langchain_mathpix_pdf_loader(server, tmp_path, monkeypatch):
    module = pytest.importorskip("langchain_community.document_loaders.pdf")
    import types

    # the loader sleeps 5 s between polls; a quicker clock keeps the test short
    monkeypatch.setattr(module, "time", types.SimpleNamespace(sleep=lambda s: time.sleep(0.05)))
    monkeypatch.setenv("MATHPIX_API_ID", server.app_id)
    monkeypatch.setenv("MATHPIX_API_KEY", server.app_key)

    class LocalLoader(module.MathpixPDFLoader):  # type: ignore[misc, name-defined]
        @property
        def url(self) -> str:  # hard-coded https://api.mathpix.com/v3/pdf upstream
            return f"{server.url}/v3/pdf"

    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf(2))
    for fmt in ("md", "mmd"):
        documents = LocalLoader(str(path), processed_file_format=fmt).load()
        assert "echo pdf page 2" in documents[0].page_content


def test_go_cli_streamed_multipart_upload(server, http, keys):
    """Mathpix's Go CLI streams the multipart body through a pipe (chunked, no
    Content-Length), options_json before the file, and asks for Accept: application/json."""
    boundary = "gocliboundary0123456789"
    pdf = make_pdf(2)

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="options_json"\r\n\r\n'
            '{"conversion_formats":{"docx":true,"md":true}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes.pdf"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for start in range(0, len(pdf), 100):
            yield pdf[start : start + 100]
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {
        **keys,
        "User-Agent": "mpx",
        "Accept": "application/json, */*",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    r = http.post("/v3/pdf", headers=headers, content=body())
    pdf_id = r.json()["pdf_id"]
    status = wait(http, keys, f"/v3/pdf/{pdf_id}", lambda b: b["status"] == "completed")
    assert status["input_file"] == "notes.pdf"
    conv = wait(http, keys, f"/v3/converter/{pdf_id}", lambda b: b.get("status") == "completed")
    assert set(conv["conversion_status"]) == {"docx", "md"}
    made = http.get(f"/v3/pdf/{pdf_id}.docx", headers=keys).content
    assert "echo pdf page 2" in check_file("docx", made)


@pytest.mark.parametrize(
    ("kind", "content_type", "fmt"),
    [
        ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("latex", "application/zip", "tex.zip"),
        ("pdf/html", "application/pdf", "pdf"),
        ("pdf/latex", "application/pdf", "latex.pdf"),
    ],
)
def test_js_cli_export_endpoints(server, http, kind, content_type, fmt):
    """Mathpix's JS CLI converts Markdown with POST v1/export/*, app_key alone, a string
    body (node-fetch sends it as text/plain) and checks the content type exactly."""
    r = http.post(
        f"/v1/export/{kind}",
        headers={"app_key": server.app_key, "Content-Type": "text/plain;charset=UTF-8"},
        content=json.dumps({"mmd": MMD, "fileName": "notes"}),
    )
    assert r.status_code == 200 and r.headers["content-type"] == content_type
    text = check_file(fmt, r.content) if fmt != "tex.zip" else ""
    if fmt == "tex.zip":
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            text = zf.read("notes/notes.tex").decode()
    assert "Results" in text


def test_failing_conversions_can_be_injected(server, http, keys):
    server.configure(failing_conversions=("docx",))
    conv = http.post("/v3/converter", headers=keys, json={"mmd": MMD, "formats": {"docx": True}})
    path = f"/v3/converter/{conv.json()['conversion_id']}"
    status = wait(
        http, keys, path, lambda b: b["conversion_status"]["docx"]["status"] != "processing"
    )
    assert status["conversion_status"]["docx"]["status"] == "error"
    r = http.get(f"{path}.docx", headers=keys)
    assert r.status_code == 404 and r.json()["error_info"]["id"] == "conversion_error"
