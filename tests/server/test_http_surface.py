"""The HTTP surface foreign clients meet: CORS, JSON 404/405, trailing slashes, app_key-only
auth where Mathpix's own CLI and docs examples use it, and the smaller points of issue 14.
Every request is built by hand with httpx, as those clients send it."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from mathpix_nb.server import LocalServer

from .conftest import data_uri, echo_text, make_png
from .test_pdf_batch import make_pdf

ORIGIN = "http://localhost:3000"


def _wait_pdf(http: httpx.Client, headers: dict[str, str], pdf_id: str) -> dict:
    deadline = time.monotonic() + 10
    while True:
        status = http.get(f"/v3/pdf/{pdf_id}", headers=headers).json()
        if status["status"] in ("completed", "error"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.02)


# --------------------------------------------------------------------------- CORS


def test_preflight_allows_the_app_token_headers_on_every_route(server, http):
    for path in ("/v3/text", "/v3/strokes", "/v3/pdf/abc.mmd", "/v3/nothing-here"):
        r = http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "app_token, strokes_session_id, content-type",
            },
        )
        assert r.status_code == 204, path
        assert r.headers["access-control-allow-origin"] == "*"
        allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"app_token", "strokes_session_id", "app_id", "app_key", "content-type"} <= allowed
        assert "POST" in r.headers["access-control-allow-methods"]
        assert int(r.headers["access-control-max-age"]) > 0


def test_every_answer_carries_cors_headers(server, http, keys, png):
    headers = {"Origin": ORIGIN}
    ok = http.post("/v3/text", headers={**keys, **headers}, json={"src": data_uri(png)})
    denied = http.post("/v3/text", headers=headers, json={"src": data_uri(png)})
    missing = http.get("/v3/nope", headers=headers)
    for r, status in ((ok, 200), (denied, 401), (missing, 404)):
        assert r.status_code == status
        assert r.headers["access-control-allow-origin"] == "*"
        assert "Retry-After" in r.headers["access-control-expose-headers"]


def test_cors_origins_can_be_restricted(png):
    with LocalServer(cors_allow_origins=(ORIGIN,)) as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        mine = http.post(
            "/v3/text", headers={**keys, "Origin": ORIGIN}, json={"src": data_uri(png)}
        )
        assert mine.headers["access-control-allow-origin"] == ORIGIN
        assert mine.headers["vary"] == "Origin"
        other = http.options("/v3/text", headers={"Origin": "http://evil.example"})
        assert other.status_code == 204 and "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------------- routing


def test_unknown_routes_and_wrong_methods_answer_json(server, http, keys):
    r = http.get("/v3/does-not-exist", headers=keys)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error_info"]["id"] == "http_not_found"
    files = http.get("/files/v1/nothing/here", headers=keys)
    assert files.status_code == 404 and files.json()["error"] == "not_found"
    r = http.get("/v3/text", headers=keys)
    assert r.status_code == 405 and r.json()["error_info"]["id"] == "http_method_not_allowed"
    assert "POST" in r.headers["allow"]
    r = http.put("/v3/pdf/abc", headers=keys)
    assert r.status_code == 405 and {"GET", "DELETE"} <= set(r.headers["allow"].split(", "))
    assert server.log[-1].status_code == 405 and server.log[-1].endpoint == "(unknown)"


def test_trailing_slash_is_the_same_route_never_a_redirect(server, http, keys):
    r = http.post(
        "/v3/pdf/", headers=keys, files={"file": ("a.pdf", make_pdf(1), "application/pdf")}
    )
    assert r.status_code == 200 and "pdf_id" in r.json()
    assert http.get(f"/v3/pdf/{r.json()['pdf_id']}/", headers=keys).json()["pdf_id"]


def test_head_answers_like_get(server, http, keys):
    r = http.head("/_local/health")
    assert r.status_code == 200 and r.content == b""


# --------------------------------------------------------------------------- app_key only


def test_app_key_alone_on_the_document_routes(server, http, keys):
    """Mathpix's JS CLI uploads with app_key alone, polls and downloads the same way."""
    key = {"app_key": server.app_key}
    pdf = make_pdf(2)
    r = http.post(
        "/v3/pdf",
        headers=key,
        files={"file": ("paper.pdf", pdf, "application/pdf")},
        data={"options_json": '{"streaming": true}'},
    )
    pdf_id = r.json()["pdf_id"]
    assert _wait_pdf(http, key, pdf_id)["status"] == "completed"
    assert http.get(f"/v3/pdf/{pdf_id}.mmd", headers=key).status_code == 200
    with http.stream("GET", f"/v3/pdf/{pdf_id}/stream", headers=key) as stream:
        assert stream.status_code == 200 and len([ln for ln in stream.iter_lines() if ln]) == 2
    assert http.get("/v3/ocr-usage", headers=key).json()["ocr_usage"]
    assert http.delete(f"/v3/pdf/{pdf_id}", headers=key).status_code == 200
    assert {r.auth_mode for r in server.log} == {"app_key"}
    # the image endpoints keep the docs' rule: app_id + app_key
    assert http.post("/v3/text", headers=key, json={"src": data_uri(make_png())}).status_code == 401


@pytest.mark.parametrize(
    ("mode", "text_status", "pdf_status"),
    [("docs", 401, 401), ("everywhere", 200, 200), ("accept", 401, 200)],
)
def test_app_key_only_switch(png, mode, text_status, pdf_status):
    with LocalServer(app_key_only=mode) as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        assert http.post("/v3/text", headers=key, json={"src": data_uri(png)}).status_code == (
            text_status
        )
        assert http.get("/v3/pdf/unknown", headers=key).status_code == pdf_status
        # the docs' own app_key-only routes work in every mode
        assert http.get("/v3/ocr-results", headers=key).status_code == 200


# --------------------------------------------------------------------------- item 7


def test_pdf_status_and_delete_agree_and_input_file_names_the_upload(server, http, keys):
    r = http.post(
        "/v3/pdf", headers=keys, files={"file": ("thesis.pdf", make_pdf(1), "application/pdf")}
    )
    pdf_id = r.json()["pdf_id"]
    status = _wait_pdf(http, keys, pdf_id)
    assert status["input_file"] == "thesis.pdf"
    deleted = http.delete(f"/v3/pdf/{pdf_id}", headers=keys).json()
    assert deleted["version"] == status["version"] == "echo-1"
    assert deleted["input_file"] == "thesis.pdf" and deleted["deleted_at"]
    listed = http.get("/v3/pdf-results", headers=keys).json()["pdfs"][0]
    assert listed["input_file"] == "thesis.pdf"


def test_file_part_without_a_filename_is_read_as_bytes(server, http, keys, png):
    # curl -F "file=<image.png" and some form libraries send the part without a filename
    boundary = "XyZ123"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="options_json"\r\n\r\n{{}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = http.post(
        "/v3/text",
        headers={**keys, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert r.json()["text"] == echo_text(png)
    assert server.log[-1].image_sha256 == hashlib.sha256(png).hexdigest()


def test_text_formats_rules(server, http, keys, png):
    src = {"src": data_uri(png)}
    # unsupported names are ignored (changelog 2024-06-22); none left -> the text format
    only_unknown = http.post("/v3/text", headers=keys, json={**src, "formats": ["wolfram"]}).json()
    assert only_unknown["text"] == echo_text(png) and "error" not in only_unknown
    mixed = http.post("/v3/text", headers=keys, json={**src, "formats": ["html", "foo"]}).json()
    assert "html" in mixed and "text" not in mixed
    # not a name at all: an error, never an empty 200
    bad = http.post("/v3/text", headers=keys, json={**src, "formats": [1]}).json()
    assert bad["error_info"]["id"] == "opts_unknown_format" and bad["request_id"]


def test_region_outside_the_image_is_an_error(server, http, keys):
    png = make_png(64, 32, mark=5)
    url = server.host_file(png, "eq.png")
    outside = {"top_left_x": 100, "top_left_y": 0, "width": 10, "height": 10}
    r = http.post("/v3/text", headers=keys, json={"src": url, "region": outside}).json()
    assert r["error_info"]["id"] == "opts_value_out_of_range" and "text" not in r
    partly = {"top_left_x": 60, "top_left_y": 20, "width": 50, "height": 50}
    r = http.post("/v3/text", headers=keys, json={"src": url, "region": partly}).json()
    assert r["text"].endswith("region:60,20,4,12")  # clipped to the image


def test_legacy_latex_url_alias_and_latex_field(png):
    with LocalServer() as srv, httpx.Client(base_url=srv.url) as http:
        keys = srv.credentials()
        r = http.post("/v3/latex", headers=keys, json={"url": data_uri(png)}).json()
        assert r["latex"] == r["latex_normal"] and r["latex_confidence"] == 1
        asked = http.post(
            "/v3/latex", headers=keys, json={"src": data_uri(png), "formats": ["asciimath"]}
        ).json()
        assert "latex" not in asked and asked["asciimath"] == echo_text(png)
        srv.configure(latex_legacy_fields=False)
        r = http.post("/v3/latex", headers=keys, json={"url": data_uri(png)}).json()
        assert r["error_info"]["id"] == "image_missing"
        assert (
            "latex" not in http.post("/v3/latex", headers=keys, json={"src": data_uri(png)}).json()
        )
