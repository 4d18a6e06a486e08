"""POST v3/text and v3/latex: transports, options, errors, and what the log records."""

from __future__ import annotations

import json

import httpx

from mathpix_nb.server import LocalServer

from .conftest import data_uri, echo_text, make_png


def post_file(
    http: httpx.Client,
    keys: dict[str, str],
    data: bytes,
    options: dict | None = None,
    path: str = "/v3/text",
) -> httpx.Response:
    return http.post(
        path,
        headers=keys,
        files={"file": ("img.png", data, "image/png")},
        data={"options_json": json.dumps(options or {})},
    )


def test_multipart_upload_names_the_image(http, keys, png):
    r = post_file(http, keys, png, {"formats": ["text"]})
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == echo_text(png)
    assert body["image_width"] == 64 and body["image_height"] == 32
    assert body["confidence"] == 1.0 and body["request_id"]
    assert "error" not in body


def test_json_data_uri_and_url_src(server, http, keys, png):
    other = make_png(mark=9)
    r = http.post("/v3/text", headers=keys, json={"src": data_uri(png)})
    assert r.json()["text"] == echo_text(png)
    url = server.host_file(other, "other.png")
    r = http.post("/v3/text", headers=keys, json={"src": url})
    assert r.json()["text"] == echo_text(other)


def test_formats_line_and_word_data(http, keys, png):
    options = {
        "formats": ["text", "html", "data", "latex_styled"],
        "data_options": {"include_asciimath": True},
        "include_line_data": True,
        "include_word_data": True,
    }
    body = post_file(http, keys, png, options).json()
    assert body["html"].startswith("<div>") and echo_text(png) in body["html"]
    assert body["data"] == [{"type": "asciimath", "value": echo_text(png)}]
    assert body["latex_styled"].startswith("\\text{echo")
    assert body["line_data"][0]["text"] == echo_text(png)
    assert [w["text"] for w in body["word_data"]] == echo_text(png).split()


def test_region_option_is_used_and_validated(http, keys, png):
    ok = post_file(
        http, keys, png, {"region": {"top_left_x": 1, "top_left_y": 2, "width": 10, "height": 5}}
    ).json()
    assert ok["text"].endswith("region:1,2,10,5")
    bad = post_file(http, keys, png, {"region": {"top_left_x": 1}}).json()
    assert bad["error_info"]["id"] == "opts_value_out_of_range"
    assert bad["error_info"]["name"] == "region"


def test_ocr_errors_are_http_200_with_request_id(http, keys, png):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, "GIF")
    gif = buffer.getvalue()  # Pillow reads it, Mathpix (OpenCV) does not
    cases = [
        (http.post("/v3/text", headers=keys, json={}), "image_missing"),
        (
            http.post(
                "/v3/text", headers={**keys, "content-type": "application/json"}, content=b"{nope"
            ),
            "json_syntax",
        ),
        (post_file(http, keys, b"not an image"), "image_decode_error"),
        (post_file(http, keys, make_png(blank=True)), "image_no_content"),
        (post_file(http, keys, gif), "image_decode_error"),
        (post_file(http, keys, b"%PDF-1.4 not an image"), "image_decode_error"),
        (post_file(http, keys, png, {"confidence_threshold": "high"}), "opts_number_required"),
        (post_file(http, keys, png, {"confidence_threshold": 2}), "opts_value_out_of_range"),
        (
            http.post("/v3/text", headers=keys, json={"src": "data:image/png;base64,@@@"}),
            "image_decode_error",
        ),
        (
            http.post("/v3/text", headers=keys, json={"src": "http://127.0.0.1:9/x.png"}),
            "image_download_error",
        ),
    ]
    for response, error_id in cases:
        assert response.status_code == 200, error_id
        body = response.json()
        assert body["error_info"]["id"] == error_id
        assert body["error"] and body["error_info"]["message"]
        assert body["request_id"]


def test_math_confidence_threshold():
    from mathpix_nb.server import EchoEngine

    with LocalServer(engine=EchoEngine(confidence=0.5)) as srv:
        r = httpx.post(
            srv.url + "/v3/text",
            headers=srv.credentials(),
            json={"src": data_uri(make_png()), "confidence_threshold": 0.9},
        )
        assert r.json()["error_info"]["id"] == "math_confidence"


def test_size_limits(http, keys):
    big = b"\0" * (5 * 1024 * 1024 + 10)
    r = post_file(http, keys, big)
    assert r.status_code == 200 and r.json()["error_info"]["id"] == "sys_request_too_large"
    payload = "data:image/png;base64," + "A" * (2 * 1024 * 1024 + 4)
    r = http.post("/v3/text", headers=keys, json={"src": payload})
    assert r.json()["error_info"]["id"] == "sys_request_too_large"


def test_latex_endpoint(http, keys, png):
    body = post_file(
        http, keys, png, {"formats": ["latex_styled", "text", "latex_list"]}, path="/v3/latex"
    ).json()
    assert body["text"] == echo_text(png)
    assert body["latex_styled"] == f"\\text{{{echo_text(png)}}}"
    assert body["latex_list"] == [body["latex_styled"]]
    assert body["latex_confidence"] == 1.0
    assert set(body["position"]) == {"top_left_x", "top_left_y", "width", "height"}
    assert body["detection_map"]["is_blank"] == 0
    default = post_file(http, keys, png, path="/v3/latex").json()
    assert "latex_normal" in default
    bad = post_file(http, keys, png, {"formats": ["nope"]}, path="/v3/latex").json()
    assert bad["error_info"]["id"] == "opts_unknown_format"
    bad = post_file(http, keys, png, {"ocr": ["text"]}, path="/v3/latex").json()
    assert bad["error_info"]["id"] == "opts_unknown_ocr"


def test_log_records_requests_without_secrets(server, http, keys, png):
    server.clear_log()
    post_file(http, keys, png, {"tags": ["a", "b"]})
    http.post("/v3/text", headers={"app_id": server.app_id, "app_key": "wrong"}, json={})
    records = server.log
    assert len(records) == 2
    ok, bad = records
    assert ok.endpoint == "/v3/text" and ok.method == "POST" and ok.region == "global"
    assert ok.auth_mode == "keys" and ok.tags == ("a", "b") and ok.status_code == 200
    assert ok.error_id is None and ok.request_id and ok.bytes_received > len(png)
    import hashlib

    assert ok.image_sha256 == hashlib.sha256(png).hexdigest()
    assert bad.status_code == 401 and bad.error_id == "http_unauthorized"
    assert server.app_key not in repr(records) and server.app_key not in repr(server)
