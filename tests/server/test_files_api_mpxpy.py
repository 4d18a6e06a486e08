"""Mathpix's own SDK (mpxpy 0.0.23) drives the local Files API unchanged: uploads, URI
submissions, jobs with custom ids, listings, downloads, deletes, data sources, webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathpix_nb.server import LocalServer

from .test_files_api import echo_mmd
from .test_pdf_batch import make_pdf

mathpix_client = pytest.importorskip("mpxpy.mathpix_client")
from mpxpy.errors import FilesApiError, ValidationError  # noqa: E402
from mpxpy.file_job import FileSubmission  # noqa: E402
from mpxpy.webhooks import verify_signature  # noqa: E402


@pytest.fixture
def srv(tmp_path: Path):
    with LocalServer(
        bucket_root=tmp_path / "buckets", webhook_allow_http=True, pdf_step_delay=0.01
    ) as server:
        yield server


@pytest.fixture
def mpx(srv: LocalServer):
    return mathpix_client.MathpixClient(app_id=srv.app_id, app_key=srv.app_key, api_url=srv.url)


def test_mpxpy_upload_and_uri_files(mpx, srv, tmp_path):
    pdf = make_pdf(2)
    path = tmp_path / "paper.pdf"
    path.write_bytes(pdf)
    file = mpx.file_new(
        file_path=str(path), conversion_formats={"md": True}, job_id="mpx", custom_id="paper-1"
    )
    assert file.wait_until_complete(timeout=10)
    assert file.to_mmd_text() == echo_mmd(pdf, 2)
    assert file.wait_for_format("md", timeout=10) and file.to_md_text() == echo_mmd(pdf, 2)
    assert [p["page"] for p in file.to_lines_json()["pages"]] == [1, 2]
    saved = file.to_md_file(str(tmp_path / "out") + "/")
    assert Path(saved).read_text() == echo_mmd(pdf, 2)
    assert file.custom_id == "paper-1" and file.num_pages == 2 and file.percent_done == 100.0
    with pytest.raises(ValidationError):  # 415 unsupported_format: html was never requested
        file.to_html_bytes()
    url = srv.host_file(pdf, "remote.pdf")
    first = mpx.file_new(source_uri=url, idempotency_key="once-only", filename="Remote.pdf")
    again = mpx.file_new(source_uri=url, idempotency_key="once-only")
    assert again.file_id == first.file_id
    assert mpx.file_get(first.file_id).filename == "Remote.pdf"
    with pytest.raises(FilesApiError) as missing:
        mpx.file_get("f0000000-0000-4000-8000-000000000000")
    assert (missing.value.error_id, missing.value.http_status) == ("not_found", 404)
    assert first.wait_until_complete(timeout=10)
    assert mpx.file_delete(first.file_id) == {"file_id": first.file_id, "status": "deleted"}
    assert mpx.file_delete(first.file_id) == {"file_id": first.file_id, "status": "deleted"}


def test_mpxpy_jobs_listing_and_webhooks(mpx, srv):
    secret = mpx.webhook_config_get().signing_secret
    url = srv.host_file(make_pdf(1), "doc.pdf")
    job = mpx.file_job_new(
        files=[
            FileSubmission(source_uri=url, custom_id="a"),
            {"source_uri": "s3://nowhere/x.pdf", "custom_id": "b"},
            FileSubmission(source_uri=url, custom_id="c", page_ranges="1"),
        ],
        job_id="mpx-job",
        conversion_formats={"md": True},
        callback_url=srv.inbox_url("mpx"),
        callback_events=["file.error", "job.completed"],
    )
    assert job.job_id == "mpx-job" and job.file_count == 3
    assert job.wait_until_complete(timeout=10, interval=0.05)
    status = job.status()
    assert (status["files_completed"], status["files_errored"]) == (2, 1)
    assert [f["custom_id"] for f in job.files_iter(status="error")] == ["b"]
    assert sorted(f["custom_id"] for f in job.files_iter(limit=1)) == ["a", "b", "c"]
    found = job.file_by_custom_id("a")
    assert found.custom_id == "a" and found.status()["status"] == "completed"
    assert job.finalize()["job_id"] == "mpx-job"
    assert "mpx-job" in [j["job_id"] for j in mpx.file_job_list(limit=10)["jobs"]]
    assert mpx.file_job_get("mpx-job").file_count == 3
    with pytest.raises(FilesApiError) as bad:
        mpx.file_job_list(start="last week")
    assert bad.value.error_id == "bad_request"
    deadline_events = {d["json"]["event"] for d in _wait(srv, "mpx", 2)}
    assert deadline_events == {"file.error", "job.completed"}
    for delivery in srv.inbox("mpx"):
        raw = json.dumps(delivery["json"], separators=(",", ":"))
        assert verify_signature(delivery["headers"]["mathpix-signature"], raw, secret)
    probe = mpx.webhook_config_test(callback_url=srv.inbox_url("probe"))
    assert probe == {"status": "delivered", "response_code": 200, "detail": None}
    (test_delivery,) = srv.inbox("probe")
    raw = json.dumps(test_delivery["json"], separators=(",", ":"))
    assert verify_signature(test_delivery["headers"]["mathpix-signature"], raw, secret)


def test_mpxpy_data_sources(mpx, srv, tmp_path):
    identities = mpx.onboarding_identities()
    ext = identities["aws"]["external_id"]
    (tmp_path / "buckets" / "mpx-bucket").mkdir(parents=True)
    source = mpx.data_source_new(
        provider="aws",
        bucket="mpx-bucket",
        auth_method="iam_role",
        provider_specific_details={"iam_role_arn": "arn:aws:iam::1:role/x", "aws_external_id": ext},
        name="mpx inputs",
    )
    listed = mpx.data_source_list()["data_sources"]
    assert [d["data_source_id"] for d in listed] == [source.data_source_id]
    assert source.test()["result"] == "ok"
    with pytest.raises(FilesApiError) as clash:
        mpx.data_source_new(
            provider="aws",
            bucket="mpx-bucket",
            auth_method="iam_role",
            provider_specific_details={"iam_role_arn": "arn", "aws_external_id": ext},
        )
    assert (clash.value.error_id, clash.value.http_status) == ("conflict", 409)
    assert source.delete()["status"] == "deleted"
    with pytest.raises(FilesApiError) as gone:
        mpx.data_source_delete(source.data_source_id)
    assert gone.value.error_id == "not_found"


def _wait(srv: LocalServer, name: str, count: int) -> list[dict]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(srv.inbox(name)) < count:
        time.sleep(0.02)
    return srv.inbox(name)
