"""Two callers through one proxy process: neither ever sees the other's work.

Real processes over loopback: the LocalServer as upstream, the service in its own process,
clients configured only by MATHPIX_PROXY_URL + MATHPIX_PROXY_AUTH.
"""

from __future__ import annotations

import httpx
import pytest

from mathpix_nb import Mathpix, MathpixError

from .conftest import ALICE, BOB
from .proxy_support import env_client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def alice(proxy_service, monkeypatch) -> Mathpix:
    return env_client(monkeypatch, proxy_service.url, ALICE)


@pytest.fixture
def bob(proxy_service, monkeypatch) -> Mathpix:
    return env_client(monkeypatch, proxy_service.url, BOB)


def _headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_text_and_async_results_stay_with_their_caller(
    alice, bob, proxy_service, upstream, png_bytes
) -> None:
    assert alice.can_async and alice.text(png_bytes).text.startswith("echo")
    request_id = alice.submit(png_bytes, tags=["shared-tag"])
    bob.submit(png_bytes, tags=["shared-tag"])
    mine = list(alice.ocr_results(tags=["shared-tag"]))
    theirs = list(bob.ocr_results(tags=["shared-tag"]))
    assert len(mine) == 1 and len(theirs) == 1
    assert "mathpix-nb-caller:bearer:alice" in mine[0]["request_args"]["tags"]
    # bob cannot fetch alice's async result by its id, nor list everything untagged
    assert list(bob.ocr_results(request_id=request_id)) == []
    assert len(list(alice.ocr_results(request_id=request_id))) == 1
    assert all(
        "mathpix-nb-caller:bearer:bob" in row["request_args"]["tags"] for row in bob.ocr_results()
    )
    # what reached Mathpix: the key (not the caller's secret) and the caller's tag
    sent = [r for r in upstream.log if r.endpoint == "/v3/text"][-2:]
    assert {t for r in sent for t in r.tags if t.startswith("mathpix-nb-caller:")} == {
        "mathpix-nb-caller:bearer:alice",
        "mathpix-nb-caller:bearer:bob",
    }
    assert all(r.auth_mode != "app_token" for r in sent)


def test_caller_cannot_set_or_remove_the_caller_tag(proxy_service, png_bytes) -> None:
    forged = "mathpix-nb-caller:bearer:alice"
    with httpx.Client(base_url=proxy_service.url, headers=_headers(BOB), timeout=20) as http:
        answer = http.post(
            "/v3/text",
            files={"file": ("x.png", png_bytes, "image/png")},
            data={"options_json": f'{{"tags": ["{forged}"]}}'},
        )
        assert answer.status_code == 400 and "set by the team proxy" in answer.json()["error"]
        query = http.get("/v3/ocr-results", params={"tags": forged})
        assert query.status_code == 400
        # JSON bodies too
        json_body = http.post("/v3/text", json={"src": "https://x.invalid/a.png", "tags": [forged]})
        assert json_body.status_code == 400


def test_pdfs_are_isolated_on_every_endpoint(alice, bob, pdf_bytes) -> None:
    result = alice.pdf(pdf_bytes)
    pdf_id = result.pdf_id
    assert "page" in result.mmd or result.mmd
    assert [p["id"] for p in alice.pdf_results()][:1] == [pdf_id]
    assert all(p["id"] != pdf_id for p in bob.pdf_results())
    with pytest.raises(MathpixError):
        bob.pdf_status(pdf_id)
    with pytest.raises(MathpixError):
        bob.pdf_download(pdf_id, "mmd")
    with pytest.raises(MathpixError):
        bob.pdf_delete(pdf_id)
    assert list(bob.ocr_results(pdf_id=pdf_id)) == []
    assert len(list(alice.ocr_results(pdf_id=pdf_id))) == 2  # its two pages
    with httpx.Client(base_url=alice.base_url, headers=_headers(BOB), timeout=20) as http:
        stream = http.get(f"/v3/pdf/{pdf_id}/stream")
        assert stream.status_code == 404
        assert stream.json()["error_info"]["id"] == "pdf_unknown_id"
        conversion = http.get(f"/v3/converter/{pdf_id}")
        assert conversion.json()["error_info"]["id"] == "cnv_unknown_id"
        listing = http.get("/v3/pdf-results", params={"pdf_id": pdf_id})
        assert listing.json() == {"pdfs": []}
    # still there for alice after bob's attempts
    assert alice.pdf_status(pdf_id)["status"] == "completed"
    alice.pdf_delete(pdf_id)


def test_app_token_lookups_and_allow_list(alice, bob, proxy_service) -> None:
    token = alice.app_token(expires=60)
    assert alice.app_token_get(token.app_token)
    with pytest.raises(MathpixError):
        bob.app_token_get(token.app_token)
    with pytest.raises(MathpixError):
        bob.app_token_delete(token.app_token)
    with httpx.Client(base_url=proxy_service.url, headers=_headers(ALICE), timeout=20) as http:
        usage = http.get("/v3/ocr-usage")
        assert usage.status_code == 403 and "not enabled" in usage.json()["error"]
        assert http.get("/v3/converter-results").status_code == 403
        assert http.get("/v3/nothing").status_code == 404
        assert http.put("/v3/text").status_code == 405
        unauth = httpx.get(f"{proxy_service.url}/v3/ocr-results")
        assert unauth.status_code == 401
    with pytest.raises(MathpixError):
        alice.ocr_usage()


def test_untagged_bodies_get_the_tag_added(proxy_service, upstream, png_bytes) -> None:
    """A multipart body without options_json, and a JSON body without tags, are tagged."""
    url = upstream.host_file(png_bytes, "p.png")
    with httpx.Client(base_url=proxy_service.url, headers=_headers(BOB), timeout=20) as http:
        bare = http.post("/v3/text", files={"file": ("x.png", png_bytes, "image/png")})
        assert bare.status_code == 200 and bare.json()["text"].startswith("echo")
        by_url = http.post("/v3/text", json={"src": url})
        assert by_url.status_code == 200, by_url.text
    sent = [r for r in upstream.log if r.endpoint == "/v3/text"][-2:]
    assert all(r.tags == ("mathpix-nb-caller:bearer:bob",) for r in sent)


def test_converter_and_batch_ids_are_isolated(alice, bob, proxy_service) -> None:
    with httpx.Client(base_url=proxy_service.url, timeout=20) as http:
        made = http.post(
            "/v3/converter",
            headers=_headers(ALICE),
            json={"mmd": "# Title\n\n$x^2$", "formats": {"md": True}},
        )
        conversion_id = made.json()["conversion_id"]
        assert (
            http.get(f"/v3/converter/{conversion_id}", headers=_headers(ALICE)).json().get("status")
        )
        theirs = http.get(f"/v3/converter/{conversion_id}", headers=_headers(BOB))
        assert theirs.json()["error_info"]["id"] == "cnv_unknown_id"
        assert (
            http.get(f"/v3/converter/{conversion_id}.md", headers=_headers(BOB)).status_code == 404
        )
        assert (
            http.delete(f"/v3/converter/{conversion_id}", headers=_headers(BOB)).status_code == 404
        )
        batch = http.post(
            "/v3/batch",
            headers=_headers(ALICE),
            json={"urls": {"a": "https://x.invalid/a.png"}, "formats": ["text"]},
        )
        batch_id = batch.json()["batch_id"]
        assert "keys" in http.get(f"/v3/batch/{batch_id}", headers=_headers(ALICE)).json()
        other = http.get(f"/v3/batch/{batch_id}", headers=_headers(BOB)).json()
        assert other["error_info"]["id"] == "batch_unknown_id"
