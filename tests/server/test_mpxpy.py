"""The official Mathpix client (mpxpy) works against the local server: proof that we emulate
the API as Mathpix's own SDK uses it, not our own assumptions."""

from __future__ import annotations

import pytest

from mathpix_nb.server import LocalServer

from .conftest import echo_text, make_png

mathpix_client = pytest.importorskip("mpxpy.mathpix_client")


@pytest.fixture
def mpx(server: LocalServer):
    return mathpix_client.MathpixClient(
        app_id=server.app_id, app_key=server.app_key, api_url=server.url
    )


def test_image_upload(mpx, server, tmp_path):
    path = tmp_path / "eq.png"
    path.write_bytes(make_png(mark=3))
    image = mpx.image_new(file_path=str(path))
    assert image.mmd() == echo_text(path.read_bytes())
    record = server.log[-1]
    assert record.endpoint == "/v3/text" and record.auth_mode == "keys"
    assert record.image_sha256 is not None


def test_image_from_url(mpx, server):
    data = make_png(mark=4)
    image = mpx.image_new(url=server.host_file(data, "remote.png"))
    assert image.mmd() == echo_text(data)


def test_async_tags_and_query_ocr_results(mpx, server, tmp_path):
    paths = []
    for mark in (5, 6):
        path = tmp_path / f"img{mark}.png"
        path.write_bytes(make_png(mark=mark))
        paths.append(path)
    images = [mpx.image_new(file_path=str(p), is_async=True, tags=["mpxpy-job"]) for p in paths]
    for image, path in zip(images, paths, strict=True):
        assert image.wait_until_complete(timeout=10)
        assert image.mmd() == echo_text(path.read_bytes())
    found = mpx.query_ocr_results(tags=["mpxpy-job"])["ocr_results"]
    assert sorted(item["result"]["text"] for item in found) == sorted(
        echo_text(p.read_bytes()) for p in paths
    )
    assert {item["image_id"] for item in found} == {image.request_id for image in images}
    one = mpx.query_ocr_results(request_id=images[0].request_id, is_printed=True)
    assert [item["image_id"] for item in one["ocr_results"]] == [images[0].request_id]


def test_app_token_create_get_delete(mpx, server):
    created = mpx.app_token_new(expires=120, user_id="student-1")
    token = created["app_token"]
    assert token.startswith("token_") and created["app_token_expires_at"] > 1e12
    info = mpx.app_token_get(token)
    assert info["app_token"] == token and info["app_id"] == server.app_id
    assert info["user_id"] == "student-1" and info["group_id"]
    deleted = mpx.app_token_delete(token)
    assert deleted["app_token"] == token
    assert mpx.app_token_get(token)["error_info"]["id"] == "token_unknown"


def test_pdf_upload_and_md_conversion(mpx, tmp_path):
    import hashlib

    from .test_pdf_batch import make_pdf

    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf(2))
    pdf = mpx.pdf_new(file_path=str(path), convert_to_md=True)
    assert pdf.wait_until_complete(timeout=20)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    expected = f"echo pdf page 1 sha:{sha}\n\necho pdf page 2 sha:{sha}"
    assert pdf.to_mmd_text() == expected
    assert pdf.to_md_text() == expected
    assert [p["page"] for p in pdf.to_lines_json()["pages"]] == [1, 2]
