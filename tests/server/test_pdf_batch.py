"""v3/pdf (status progression, downloads, conversions, delete, pdf-results) and v3/batch."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile

import httpx
from PIL import Image

from mathpix_nb.server import LocalServer

from .conftest import data_uri, echo_text, make_png


def make_pdf(pages: int = 2) -> bytes:
    images = [Image.new("RGB", (200, 100), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def poll(http: httpx.Client, keys: dict, pdf_id: str, timeout: float = 20) -> list[dict]:
    """All distinct status bodies seen until the PDF completes (or fails)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(f"/v3/pdf/{pdf_id}", headers=keys).json()
        if not seen or status["status"] != seen[-1]["status"]:
            seen.append(status)
        if status["status"] in ("completed", "error"):
            return seen
        time.sleep(0.01)
    raise AssertionError(f"PDF {pdf_id} did not finish: {seen}")


def test_pdf_upload_progression_and_downloads():
    pdf = make_pdf(3)
    with LocalServer(pdf_step_delay=0.3) as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        r = http.post(
            "/v3/pdf",
            headers=keys,
            files={"file": ("doc.pdf", pdf, "application/pdf")},
            data={"options_json": json.dumps({"conversion_formats": {"md": True, "docx": True}})},
        )
        pdf_id = r.json()["pdf_id"]
        early = http.get(f"/v3/pdf/{pdf_id}.mmd", headers=keys)
        assert early.status_code == 404 and early.json()["status"] in ("received", "loaded")
        statuses = poll(http, keys, pdf_id)
        names = [s["status"] for s in statuses]
        assert names[0] == "received" and names[-1] == "completed"
        assert [n for n in ("received", "loaded", "split", "completed") if n in names] == names
        final = statuses[-1]
        assert final["num_pages"] == 3 and final["num_pages_completed"] == 3
        assert final["percent_done"] == 100
        assert final["version"] == "echo-1"  # which engine read it (a loader's citation needs it)
        sha = hashlib.sha256(pdf).hexdigest()[:12]
        mmd = http.get(f"/v3/pdf/{pdf_id}.mmd", headers=keys)
        assert mmd.status_code == 200
        assert mmd.text.split("\n\n") == [f"echo pdf page {n} sha:{sha}" for n in (1, 2, 3)]
        lines = http.get(f"/v3/pdf/{pdf_id}.lines.json", headers=keys).json()
        assert [p["page"] for p in lines["pages"]] == [1, 2, 3]
        assert lines["pages"][0]["lines"][0]["text"] == f"echo pdf page 1 sha:{sha}"
        # md is a conversion: 404 until its conversion completes
        md = http.get(f"/v3/pdf/{pdf_id}.md", headers=keys)
        if md.status_code == 404:
            conv = http.get(f"/v3/converter/{pdf_id}", headers=keys).json()
            assert conv["conversion_status"]["md"]["status"] == "processing"
        deadline = time.monotonic() + 10
        while True:
            conv = http.get(f"/v3/converter/{pdf_id}", headers=keys).json()
            if conv["status"] == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert conv["conversion_status"]["md"]["status"] == "completed"
        assert conv["conversion_status"]["docx"]["status"] == "completed"
        assert conv["conversion_status"]["docx"]["converter"]  # which converter made it
        assert http.get(f"/v3/pdf/{pdf_id}.md", headers=keys).text == mmd.text
        docx = http.get(f"/v3/pdf/{pdf_id}.docx", headers=keys)
        assert docx.status_code == 200 and docx.content.startswith(b"PK")
        assert docx.headers["x-mathpix-converter"] == conv["conversion_status"]["docx"]["converter"]
        # not requested: made on demand
        page = http.get(f"/v3/pdf/{pdf_id}.html", headers=keys)
        assert page.status_code == 200 and f"echo pdf page 2 sha:{sha}" in page.text
        # per-page results are queryable by pdf_id
        pages = http.get("/v3/ocr-results", headers=keys, params={"pdf_id": pdf_id}).json()
        assert sorted(i["image_id"] for i in pages["ocr_results"]) == [
            f"{pdf_id}-{n}" for n in (1, 2, 3)
        ]
        listed = http.get("/v3/pdf-results", headers=keys).json()["pdfs"]
        assert listed[0]["id"] == pdf_id and listed[0]["status"] == "completed"
        deleted = http.delete(f"/v3/pdf/{pdf_id}", headers=keys)
        assert deleted.status_code == 200 and "deleted_at" in deleted.json()
        assert http.get(f"/v3/pdf/{pdf_id}.mmd", headers=keys).status_code == 404


def test_pdf_from_url_tex_zip_and_unknown_id(server, http, keys):
    pdf = make_pdf(1)
    url = server.host_file(pdf, "doc.pdf")
    r = http.post(
        "/v3/pdf", headers=keys, json={"url": url, "conversion_formats": {"tex.zip": True}}
    )
    pdf_id = r.json()["pdf_id"]
    assert poll(http, keys, pdf_id)[-1]["status"] == "completed"
    deadline = time.monotonic() + 10
    while http.get(f"/v3/converter/{pdf_id}", headers=keys).json().get("status") != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    tex = http.get(f"/v3/pdf/{pdf_id}.tex.zip", headers=keys)
    with zipfile.ZipFile(io.BytesIO(tex.content)) as zf:
        assert b"echo pdf page 1" in zf.read(zf.namelist()[0])
    unknown = http.get("/v3/pdf/nope", headers=keys).json()
    assert unknown["error_info"]["id"] == "pdf_unknown_id"
    conv = http.get("/v3/converter/nope", headers=keys).json()
    assert conv["error_info"]["id"] == "cnv_unknown_id"


def test_pdf_errors(server, http, keys):
    assert http.post("/v3/pdf", headers=keys, json={}).json()["error_info"]["id"] == "pdf_missing"
    r = http.post("/v3/pdf", headers=keys, files={"file": ("x.pdf", b"garbage", "application/pdf")})
    failed = poll(http, keys, r.json()["pdf_id"])[-1]
    assert failed["status"] == "error" and failed["error_info"]["id"] == "pdf_decode_error"
    r = http.post("/v3/pdf", headers=keys, json={"url": "http://127.0.0.1:9/missing.pdf"})
    failed = poll(http, keys, r.json()["pdf_id"])[-1]
    assert failed["error_info"]["id"] == "pdf_download_error"
    r = http.post("/v3/pdf", headers=keys, json={"url": "x", "conversion_formats": {"odt": True}})
    assert r.json()["error_info"]["id"] == "opts_unknown_format"


def test_pdf_not_ready_can_be_202():
    with LocalServer(pdf_step_delay=1.0, pdf_not_ready_status=202) as srv:
        keys = srv.credentials()
        r = httpx.post(
            srv.url + "/v3/pdf",
            headers=keys,
            files={"file": ("d.pdf", make_pdf(1), "application/pdf")},
        )
        early = httpx.get(f"{srv.url}/v3/pdf/{r.json()['pdf_id']}.mmd", headers=keys)
        assert early.status_code == 202 and early.headers["retry-after"] == "1"


def test_batch(server, http, keys):
    a, b = make_png(mark=1), make_png(mark=2)
    r = http.post(
        "/v3/batch",
        headers=keys,
        json={
            "urls": {
                "a": server.host_file(a, "a.png"),
                "b": {"url": data_uri(b), "formats": ["text"]},
            },
            "ocr_behavior": "text",
            "formats": ["text"],
        },
    )
    batch_id = r.json()["batch_id"]
    assert isinstance(batch_id, int)
    deadline = time.monotonic() + 10
    while True:
        status = http.get(f"/v3/batch/{batch_id}", headers=keys).json()
        if len(status["results"]) == len(status["keys"]) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert status["keys"] == ["a", "b"]
    assert status["results"]["a"]["text"] == echo_text(a)
    assert status["results"]["b"]["text"] == echo_text(b)
    latex = http.post("/v3/batch", headers=keys, json={"urls": {"x": data_uri(a)}}).json()
    deadline = time.monotonic() + 10
    while not (res := http.get(f"/v3/batch/{latex['batch_id']}", headers=keys).json()["results"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert res["x"]["latex_normal"] == f"\\text{{{echo_text(a)}}}"
    unknown = http.get("/v3/batch/999", headers=keys).json()
    assert unknown["error_info"] == {
        "id": "batch_unknown_id",
        "message": "Unknown batch id",
        "batch_id": "999",
    }
    other_region = httpx.get(f"{server.urls['eu']}/v3/batch/{batch_id}", headers=keys).json()
    assert other_region["error_info"]["id"] == "batch_unknown_id"
    bad = http.post("/v3/batch", headers=keys, json={"urls": {"a": "x"}, "ocr_behavior": "y"})
    assert bad.json()["error_info"]["id"] == "opts_value_out_of_range"


def test_page_ranges(server, http, keys):
    pdf = make_pdf(5)
    sha = hashlib.sha256(pdf).hexdigest()[:12]
    r = http.post(
        "/v3/pdf",
        headers=keys,
        files={"file": ("d.pdf", pdf, "application/pdf")},
        data={"options_json": json.dumps({"page_ranges": "1,3 - -2"})},
    )
    pdf_id = r.json()["pdf_id"]
    final = poll(http, keys, pdf_id)[-1]
    assert final["num_pages"] == 3
    mmd = http.get(f"/v3/pdf/{pdf_id}.mmd", headers=keys).text
    assert mmd.split("\n\n") == [f"echo pdf page {n} sha:{sha}" for n in (1, 3, 4)]
    lines = http.get(f"/v3/pdf/{pdf_id}.lines.json", headers=keys).json()
    assert [p["page"] for p in lines["pages"]] == [1, 3, 4]
    bad = http.post("/v3/pdf", headers=keys, json={"url": "x", "page_ranges": "1-x"}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"


def test_batch_callback_is_delivered(server, http, keys):
    a = make_png(mark=5)
    callback = {
        "post": server.inbox_url("hook"),
        "reply": {"job": "nightly"},
        "headers": {"X-Secret-Hook": "abc"},
    }
    r = http.post(
        "/v3/batch",
        headers=keys,
        json={"urls": {"a": data_uri(a)}, "ocr_behavior": "text", "callback": callback},
    )
    batch_id = r.json()["batch_id"]
    deadline = time.monotonic() + 10
    while not server.inbox("hook"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (delivery,) = server.inbox("hook")
    assert delivery["json"]["reply"] == {"batch_id": str(batch_id), "job": "nightly"}
    assert delivery["json"]["result"]["a"]["text"] == echo_text(a)
    assert delivery["headers"]["x-secret-hook"] == "abc"
    status = http.get(f"/v3/batch/{batch_id}", headers=keys).json()
    assert status["callback"]["post"] == callback["post"]
    bad = http.post(
        "/v3/batch",
        headers=keys,
        json={"urls": {"a": data_uri(a)}, "callback": {"post": "x", "reply": {"batch_id": 1}}},
    )
    assert bad.json()["error_info"]["id"] == "opts_bad_callback"


def test_pdf_stream_sends_one_event_per_page():
    pdf = make_pdf(3)
    sha = hashlib.sha256(pdf).hexdigest()[:12]
    with LocalServer(pdf_step_delay=0.1) as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        pdf_id = http.post(
            "/v3/pdf",
            headers=keys,
            files={"file": ("d.pdf", pdf, "application/pdf")},
            data={"options_json": json.dumps({"streaming": True})},
        ).json()["pdf_id"]
        events = []
        # an SSE client (a browser's EventSource sends this Accept header)
        sse = {**keys, "Accept": "text/event-stream"}
        with http.stream("GET", f"/v3/pdf/{pdf_id}/stream", headers=sse, timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert [e["page_idx"] for e in events] == [1, 2, 3]
        # a line reader (requests' iter_lines, default Accept */*): one bare JSON per line
        with http.stream("GET", f"/v3/pdf/{pdf_id}/stream", headers=keys, timeout=30) as r:
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in r.iter_lines() if line]
        assert lines == events
        assert {e["pdf_selected_len"] for e in events} == {3}
        assert events[1]["text"] == f"echo pdf page 2 sha:{sha}"
        assert all(e["pdf_id"] == pdf_id for e in events)
        plain = http.post(
            "/v3/pdf", headers=keys, files={"file": ("d.pdf", pdf, "application/pdf")}
        ).json()["pdf_id"]
        refused = http.get(f"/v3/pdf/{plain}/stream", headers=keys).json()
        assert refused["error_info"]["id"] == "pdf_streaming_not_enabled"
