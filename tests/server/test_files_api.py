"""The Files API (/files/v1) of the local server, driven by plain HTTP requests shaped like the
docs' examples (``app_key`` header alone) and like mpxpy 0.0.23 sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mathpix_nb.server import Faults, FileFaults, LocalServer

from .test_pdf_batch import make_pdf


def wait_file(
    http: httpx.Client, key: dict[str, str], file_id: str, timeout: float = 15
) -> list[dict[str, Any]]:
    """Every distinct status body until the file and all its formats are final."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/files/v1/{file_id}", headers=key).json()
        if not seen or (body["status"], body["formats"]) != (
            seen[-1]["status"],
            seen[-1]["formats"],
        ):
            seen.append(body)
        formats_done = all(s in ("completed", "error") for s in body["formats"].values())
        if body["status"] == "error" or (body["status"] == "completed" and formats_done):
            return seen
        time.sleep(0.01)
    raise AssertionError(f"file {file_id} did not finish: {seen[-1:]}")


def wait_job(
    http: httpx.Client, key: dict[str, str], job_id: str, timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/files/v1/jobs/{job_id}", headers=key).json()
        if body["status"] == "completed":
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {body}")


def all_files(
    http: httpx.Client, key: dict[str, str], job_id: str, **params: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        query = {**params, **({"paging_state": token} if token else {})}
        page = http.get(f"/files/v1/jobs/{job_id}/files", headers=key, params=query)
        assert page.status_code == 200, page.text
        out += page.json()["files"]
        token = page.json()["next_page_token"]
        if not token:
            return out


def echo_mmd(pdf: bytes, pages: int) -> str:
    sha = hashlib.sha256(pdf).hexdigest()[:12]
    return "\n\n".join(f"echo pdf page {n} sha:{sha}" for n in range(1, pages + 1))


@pytest.fixture
def srv(tmp_path: Path):
    with LocalServer(
        regions=("global", "eu"), bucket_root=tmp_path / "buckets", webhook_allow_http=True
    ) as server:
        yield server


@pytest.fixture
def http(srv: LocalServer):
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


@pytest.fixture
def key(srv: LocalServer) -> dict[str, str]:
    return {"app_key": srv.app_key}  # the docs send app_key alone on every Files API call


# --------------------------------------------------------------------------- one document


def test_uri_submission_like_the_quickstart(tmp_path):
    pdf = make_pdf(3)
    # pages take 0.1 s each (latency model), so polling sees the "split" state
    with (
        LocalServer(pdf_step_delay=0.15, latency_base=0.1) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        key = {"app_key": srv.app_key}
        r = http.post(
            "/files/v1/uri",
            headers={**key, "Content-Type": "application/json"},
            json={
                "source_uri": srv.host_file(pdf, "cs229-notes1.pdf"),
                "conversion_formats": {"docx": True, "md": True},
            },
        )
        assert r.status_code == 200 and set(r.json()) == {"file_id"}
        file_id = r.json()["file_id"]
        early = http.get(f"/files/v1/{file_id}.mmd", headers=key)
        assert early.status_code == 404 and early.json()["error"] == "format_not_ready"
        assert early.json()["status"] == "pending"
        seen = wait_file(http, key, file_id)
        statuses = [s["status"] for s in seen]
        assert statuses[0] == "pending" and "split" in statuses and statuses[-1] == "completed"
        progress = [s["percent_done"] for s in seen if s["status"] == "split"]
        assert progress == sorted(progress) and all(0 <= p < 100 for p in progress)
        assert next(s["percent_done"] for s in seen if s["status"] == "pending") == 0.0
        final = seen[-1]
        assert final["num_pages"] == final["num_pages_completed"] == 3
        assert final["percent_done"] == 100.0 and final["format_primary"] == "mmd"
        assert final["custom_id"] is None and final["filename"] == f"{file_id}.pdf"
        assert set(final["formats"]) == {"docx", "md"}
        mmd = http.get(f"/files/v1/{file_id}.mmd", headers=key)
        assert mmd.status_code == 200 and mmd.text == echo_mmd(pdf, 3)
        lines = http.get(f"/files/v1/{file_id}.lines.json", headers=key).json()
        assert [p["page"] for p in lines["pages"]] == [1, 2, 3]
        for fmt, state in final["formats"].items():  # every requested format, as it ended
            got = http.get(f"/files/v1/{file_id}.{fmt}", headers=key)
            if state == "completed":
                assert got.status_code == 200 and got.content
            else:
                assert got.status_code == 404 and got.json()["error"] == "conversion_error"
        assert http.get(f"/files/v1/{file_id}.md", headers=key).text == mmd.text
        never = http.get(f"/files/v1/{file_id}.html", headers=key)
        assert never.status_code == 415 and never.json()["error"] == "unsupported_format"
        missing = http.get("/files/v1/7d3e3a1c-0000-4000-8000-000000000000", headers=key)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_formats_can_lag_behind_a_completed_file():
    with LocalServer(pdf_step_delay=0.2) as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        url = srv.host_file(make_pdf(1), "a.pdf")
        body = {"source_uri": url, "conversion_formats": {"md": True}}
        file_id = http.post("/files/v1/uri", headers=key, json=body).json()["file_id"]
        seen = wait_file(http, key, file_id)
        lagging = [
            s for s in seen if s["status"] == "completed" and s["formats"]["md"] != "completed"
        ]
        assert lagging, seen  # the docs: a file can be completed while a format still converts
        assert seen[-1]["formats"] == {"md": "completed"}


def test_direct_upload_field_spellings(srv, http, key):
    pdf = make_pdf(2)
    # mpxpy >= 0.0.21: job_id / custom_id / filename as form fields, options in options_json
    r = http.post(
        "/files/v1",
        headers={**key, "Idempotency-Key": "upload-1"},
        files={"file": ("paper.pdf", pdf, "application/pdf")},
        data={
            "options_json": json.dumps({"conversion_formats": {"md": True}}),
            "job_id": "uploads",
            "custom_id": "paper-1",
            "filename": "Paper One.pdf",
        },
    )
    assert r.status_code == 200, r.text
    first = r.json()["file_id"]
    # an older mpxpy test: legacy names inside options_json
    legacy = http.post(
        "/files/v1",
        headers=key,
        files={"file": ("old.pdf", pdf, "application/pdf")},
        data={"options_json": json.dumps({"scs_job_id": "uploads", "custom_id": "paper-2"})},
    )
    assert legacy.status_code == 200, legacy.text
    # the Go CLI: options_json only, no filename field (the part's name is the display name)
    cli = http.post(
        "/files/v1",
        headers=key,
        files={"file": ("cli.pdf", pdf, "application/pdf")},
        data={"options_json": "{}"},
    )
    assert cli.status_code == 200
    by_custom = http.get("/files/v1/jobs/uploads/files/paper-1", headers=key).json()
    assert by_custom["file_id"] == first and by_custom["filename"] == "Paper One.pdf"
    assert by_custom["job_id"] == "uploads"
    assert wait_file(http, key, legacy.json()["file_id"])[-1]["custom_id"] == "paper-2"
    assert wait_file(http, key, cli.json()["file_id"])[-1]["filename"] == "cli.pdf"
    assert http.get(f"/files/v1/{first}.mmd", headers=key).text == echo_mmd(pdf, 2)
    again = http.post(
        "/files/v1",
        headers={**key, "Idempotency-Key": "upload-1"},
        files={"file": ("paper.pdf", pdf, "application/pdf")},
        data={"options_json": "{}", "job_id": "uploads", "custom_id": "paper-1"},
    )
    assert again.json()["file_id"] == first  # (job_id, custom_id) names the same file
    no_file = http.post(
        "/files/v1", headers=key, data={"options_json": "{}"}, files={"x": ("a", b"1")}
    )
    assert no_file.status_code == 400 and no_file.json()["error"] == "bad_request"
    not_multipart = http.post("/files/v1", headers=key, json={"source_uri": "https://x/a.pdf"})
    assert (
        not_multipart.status_code == 400
        and "/files/v1/uri" in not_multipart.json()["error_info"]["message"]
    )


def test_auth_is_app_key_with_files_api_errors(srv, http):
    body = {"source_uri": "https://example.com/a.pdf"}
    for headers in ({}, {"app_key": "wrong"}, {"app_token": "token_abc"}):
        r = http.post("/files/v1/uri", headers=headers, json=body)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    both = http.get("/files/v1/data-sources", headers=srv.credentials())  # mpxpy sends both
    assert both.status_code == 200 and srv.log[-1].auth_mode == "keys"
    alone = http.get("/files/v1/data-sources", headers={"app_key": srv.app_key})
    assert alone.status_code == 200 and srv.log[-1].auth_mode == "app_key"
    assert srv.app_key not in str(srv.log)


def test_bad_submissions_are_400_with_a_field_name(srv, http, key):
    cases = {
        "source_uri": {},
        "conversion_formats": {
            "source_uri": "https://e.com/a.pdf",
            "conversion_formats": {"doc": True},
        },
        "custom_id requires job_id": {"source_uri": "https://e.com/a.pdf", "custom_id": "x"},
        "custom_id must be": {
            "source_uri": "https://e.com/a.pdf",
            "job_id": "j",
            "custom_id": "a b",
        },
        "page_ranges": {"source_uri": "https://e.com/a.pdf", "page_ranges": "1-x"},
        "scheme": {"source_uri": "ftp://e.com/a.pdf"},
        "callback_url must be https": {
            "source_uri": "https://e.com/a.pdf",
            "callback_url": "ftp://h/x",
        },
        "require callback_url": {"source_uri": "https://e.com/a.pdf", "callback_events": []},
    }
    for needle, body in cases.items():
        r = http.post("/files/v1/uri", headers=key, json=body)
        assert r.status_code == 400, (needle, r.text)
        assert r.json()["error"] == "bad_request" and needle in r.json()["error_info"]["message"]
    private = http.post("/files/v1/uri", headers=key, json={"source_uri": "s3://nobody/a.pdf"})
    assert private.status_code == 404 and private.json()["error"] == "data_source_not_found"
    garbage = http.post("/files/v1/uri", headers=key, content=b"{nope")
    assert garbage.status_code == 400


# --------------------------------------------------------------------------- jobs


def test_job_accept_and_defer_with_per_item_errors(srv, http, key):
    pdf = make_pdf(1)
    url = srv.host_file(pdf, "ok.pdf")
    files = [
        {"source_uri": url, "custom_id": "a"},
        {"source_uri": "s3://unregistered/x.pdf", "custom_id": "b"},
        {"source_uri": "ftp://example.com/x.pdf", "custom_id": "c"},
        {"source_uri": url, "custom_id": "a"},  # duplicate within the request
        {
            "source_uri": srv.host_file(b"not a pdf", "bad.pdf"),
            "custom_id": "d",
            "filename": "bad.pdf",
        },
        {"source_uri": url},
    ]
    r = http.post(
        "/files/v1/jobs", headers=key, json={"job_id": "contracts-2026-05", "files": files}
    )
    assert r.status_code == 200 and r.json() == {"job_id": "contracts-2026-05", "file_count": 6}
    done = wait_job(http, key, "contracts-2026-05")
    assert (done["file_count"], done["files_completed"], done["files_errored"]) == (6, 2, 4)
    errors = all_files(http, key, "contracts-2026-05", status="error")
    assert {f["custom_id"] for f in errors} == {"a", "b", "c", "d"}
    assert all(f["status"] == "error" for f in errors)
    ids = {f["custom_id"]: f["file_id"] for f in errors}
    why = {
        cid: http.get(f"/files/v1/{fid}", headers=key).json()["error"] for cid, fid in ids.items()
    }
    assert why == {
        "a": "duplicate_custom_id",
        "b": "data_source_not_found",
        "c": "invalid_source_uri",
        "d": "pdf_decode_error",
    }
    listed = all_files(http, key, "contracts-2026-05", limit=4)
    assert len(listed) == 6 and all(f["status"] is None for f in listed)  # unfiltered: null
    first_a = http.get("/files/v1/jobs/contracts-2026-05/files/a", headers=key).json()
    assert first_a["status"] == "completed" and first_a["custom_id"] == "a"
    assert http.get(f"/files/v1/{first_a['file_id']}.mmd", headers=key).text == echo_mmd(pdf, 1)
    assert http.get("/files/v1/jobs/contracts-2026-05/files/zzz", headers=key).status_code == 404
    assert http.get("/files/v1/jobs/nope", headers=key).json()["error"] == "not_found"


def test_job_rejected_variant_behind_a_switch():
    with LocalServer(files_jobs_response="reject") as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        url = srv.host_file(make_pdf(1), "ok.pdf")
        files = [
            {"source_uri": url, "custom_id": "auto"},
            {"source_uri": "s3://bucket/x.pdf", "custom_id": "manual"},
            {"source_uri": url, "custom_id": "auto"},
        ]
        r = http.post("/files/v1/jobs", headers=key, json={"job_id": "j", "files": files})
        assert r.json() == {
            "job_id": "j",
            "file_count": 1,
            "rejected": [
                {
                    "index": 1,
                    "source_uri": "s3://bucket/x.pdf",
                    "custom_id": "manual",
                    "reason": "data_source_not_found",
                },
                {
                    "index": 2,
                    "source_uri": url,
                    "custom_id": "auto",
                    "reason": "duplicate_custom_id",
                },
            ],
        }
        assert wait_job(http, key, "j")["file_count"] == 1


def test_job_idempotency_and_finalize(srv, http, key):
    url = srv.host_file(make_pdf(1), "a.pdf")
    items = [{"source_uri": url, "custom_id": f"doc-{i}"} for i in range(3)]
    first = http.post("/files/v1/jobs", headers=key, json={"job_id": "retry", "files": items})
    wait_job(http, key, "retry")
    ids = {f["custom_id"]: f["file_id"] for f in all_files(http, key, "retry")}
    again = http.post("/files/v1/jobs", headers=key, json={"job_id": "retry", "files": items})
    assert again.json() == first.json() == {"job_id": "retry", "file_count": 3}
    assert {f["custom_id"]: f["file_id"] for f in all_files(http, key, "retry")} == ids
    assert http.get("/files/v1/jobs/retry", headers=key).json()["file_count"] == 3
    # Idempotency-Key covers a whole batch without a job_id: same job, nothing queued again
    headers = {**key, "Idempotency-Key": "batch-7"}
    a = http.post("/files/v1/jobs", headers=headers, json={"files": [{"source_uri": url}] * 2})
    b = http.post("/files/v1/jobs", headers=headers, json={"files": [{"source_uri": url}] * 2})
    assert a.json() == b.json() and a.json()["file_count"] == 2
    assert wait_job(http, key, a.json()["job_id"])["file_count"] == 2
    # ... and a standalone /uri submit
    one = http.post(
        "/files/v1/uri", headers={**key, "Idempotency-Key": "k:1"}, json={"source_uri": url}
    )
    two = http.post(
        "/files/v1/uri", headers={**key, "Idempotency-Key": "k:1"}, json={"source_uri": url}
    )
    assert one.json() == two.json()
    # an errored custom_id can be submitted again: it gets a new file
    bad = http.post(
        "/files/v1/uri",
        headers=key,
        json={"source_uri": "ftp://x/y.pdf", "job_id": "retry", "custom_id": "late"},
    )
    assert bad.status_code == 400  # /uri validates synchronously
    http.post(
        "/files/v1/jobs",
        headers=key,
        json={"job_id": "retry", "files": [{"source_uri": "gs://no/x.pdf", "custom_id": "late"}]},
    )
    wait_job(http, key, "retry")
    errored = http.get("/files/v1/jobs/retry/files/late", headers=key).json()
    assert errored["status"] == "error"
    fixed = http.post(
        "/files/v1/jobs",
        headers=key,
        json={"job_id": "retry", "files": [{"source_uri": url, "custom_id": "late"}]},
    )
    assert fixed.status_code == 200
    wait_job(http, key, "retry")
    now = http.get("/files/v1/jobs/retry/files/late", headers=key).json()
    assert now["file_id"] != errored["file_id"] and now["status"] == "completed"
    # finalize: idempotent, and the job takes no new files afterwards
    f1 = http.post("/files/v1/jobs/retry/finalize", headers=key).json()
    f2 = http.post("/files/v1/jobs/retry/finalize", headers=key).json()
    assert f1["finalized_at"] == f2["finalized_at"] and f1["job_id"] == "retry"
    closed = http.post(
        "/files/v1/jobs", headers=key, json={"job_id": "retry", "files": [{"source_uri": url}]}
    )
    assert closed.status_code == 409 and closed.json()["error"] == "conflict"
    replay = http.post("/files/v1/jobs", headers=key, json={"job_id": "retry", "files": items})
    assert replay.status_code == 409  # a finalized job is closed, replays included
    assert http.post("/files/v1/jobs/none/finalize", headers=key).status_code == 404


def test_listings_paging_filters_and_bad_parameters(srv, http, key):
    url = srv.host_file(make_pdf(1), "a.pdf")
    for n in range(3):
        http.post(
            "/files/v1/jobs",
            headers=key,
            json={"job_id": f"list-{n}", "files": [{"source_uri": url}] * 5},
        )
    pages = []
    token = None
    while True:
        r = http.get(
            "/files/v1/jobs",
            headers=key,
            params={"limit": 2, **({"paging_state": token} if token else {})},
        )
        pages.append([j["job_id"] for j in r.json()["jobs"]])
        token = r.json()["next_page_token"]
        if not token:
            break
    assert pages == [["list-2", "list-1"], ["list-0"]]  # newest first
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert len(http.get("/files/v1/jobs", headers=key, params={"start": today}).json()["jobs"]) == 3
    assert (
        http.get(
            "/files/v1/jobs", headers=key, params={"start": "2001-01-01", "end": "2001-01-31"}
        ).json()["jobs"]
        == []
    )
    wait_job(http, key, "list-0")
    assert len(all_files(http, key, "list-0", status="completed", limit=2)) == 5
    assert all_files(http, key, "list-0", status="pending") == []
    bad = {
        ("/files/v1/jobs", "start", "01/02/2026"),
        ("/files/v1/jobs", "limit", "0"),
        ("/files/v1/jobs", "limit", "abc"),
        ("/files/v1/jobs/list-0/files", "status", "done"),
        ("/files/v1/jobs/list-0/files", "limit", "1001"),
        ("/files/v1/jobs/list-0/files", "paging_state", "!!!"),
    }
    for path, name, value in bad:
        r = http.get(path, headers=key, params={name: value})
        assert r.status_code == 400 and name in r.json()["error_info"]["message"], (name, r.text)


def test_delete_conflicts_while_processing_then_is_idempotent():
    with LocalServer(pdf_step_delay=0.2) as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        url = srv.host_file(make_pdf(1), "a.pdf")
        body = {"source_uri": url, "job_id": "del", "custom_id": "x"}
        file_id = http.post("/files/v1/uri", headers=key, json=body).json()["file_id"]
        busy = http.delete(f"/files/v1/{file_id}", headers=key)
        assert busy.status_code == 409 and busy.json() == {
            "error": "conflict",
            "error_info": {"id": "conflict", "message": "File is still processing"},
        }
        wait_file(http, key, file_id)
        for _ in range(2):
            gone = http.delete(f"/files/v1/{file_id}", headers=key)
            assert gone.status_code == 200 and gone.json() == {
                "file_id": file_id,
                "status": "deleted",
            }
        assert http.get(f"/files/v1/{file_id}", headers=key).status_code == 404
        assert http.get(f"/files/v1/{file_id}.mmd", headers=key).status_code == 404
        assert http.get("/files/v1/jobs/del/files/x", headers=key).status_code == 404
        job = http.get("/files/v1/jobs/del", headers=key).json()
        assert (job["file_count"], job["files_completed"]) == (0, 0)
        assert http.delete("/files/v1/no-such-file", headers=key).json()["error"] == "not_found"


def test_errored_file_download_says_why(srv, http, key):
    file_id = http.post(
        "/files/v1/uri", headers=key, json={"source_uri": srv.host_file(b"%PDF-garbage", "x.pdf")}
    ).json()["file_id"]
    final = wait_file(http, key, file_id)[-1]
    assert final["status"] == "error" and final["error"] == "pdf_decode_error"
    assert final["error_info"]["id"] == "pdf_decode_error"
    r = http.get(f"/files/v1/{file_id}.mmd", headers=key)
    assert (
        r.status_code == 404
        and r.json()["error"] == "pdf_decode_error"
        and r.json()["status"] == "error"
    )


def test_regions_keep_their_own_files(srv, http, key):
    url = srv.host_file(make_pdf(1), "a.pdf")
    file_id = http.post("/files/v1/uri", headers=key, json={"source_uri": url}).json()["file_id"]
    with httpx.Client(base_url=srv.urls["eu"]) as eu:
        assert eu.get(f"/files/v1/{file_id}", headers=key).status_code == 404
        assert eu.get("/files/v1/jobs", headers=key).json()["jobs"] == []


def test_http_faults_reach_the_files_api():
    faults = Faults(sequence=("http_5xx", "sys_exception"), endpoints=("/files/v1/uri",))
    with LocalServer(faults=faults) as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        body = {"source_uri": srv.host_file(make_pdf(1), "a.pdf")}
        codes = [http.post("/files/v1/uri", headers=key, json=body).status_code for _ in range(3)]
        assert codes == [503, 503, 200]  # no HTTP-200 error bodies on the Files API


# --------------------------------------------------------------------------- data sources, buckets


def _aws(ext_id: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "aws",
        "bucket": bucket,
        "auth_method": "iam_role",
        "provider_specific_details": {
            "iam_role_arn": "arn:aws:iam::1:role/r",
            "aws_external_id": ext_id,
        },
        **extra,
    }


def test_data_sources_register_list_test_delete(srv, http, key, tmp_path):
    ids = http.get("/files/v1/onboarding/identities", headers=key).json()
    assert ids == http.get("/files/v1/onboarding/identities", headers=key).json()  # stable
    ext = ids["aws"]["external_id"]
    assert ids["gcp"]["external_id"] == ext and set(ids["azure"]) == {"app_id", "tenant_id"}
    wrong = http.post("/files/v1/data-sources", headers=key, json=_aws("other", "in"))
    assert wrong.status_code == 400 and "external_id" in wrong.json()["error_info"]["message"]
    made = http.post("/files/v1/data-sources", headers=key, json=_aws(ext, "in", name="inputs"))
    assert made.status_code == 200
    ds_id = made.json()["data_source_id"]
    again = http.post("/files/v1/data-sources", headers=key, json=_aws(ext, "in"))
    assert (
        again.status_code == 409 and "already registered" in again.json()["error_info"]["message"]
    )
    taken = http.post("/files/v1/data-sources", headers=key, json=_aws(ext, "other", name="inputs"))
    assert taken.status_code == 409 and "named" in taken.json()["error_info"]["message"]
    invalid = [
        {**_aws(ext, "b"), "provider": "dropbox"},
        {**_aws(ext, "b"), "auth_method": "azure_ad"},
        {**_aws(ext, "b"), "provider_specific_details": {}},
        {**_aws(ext, "b"), "secret": "s"},  # keyless methods take no secret
        {
            "provider": "aws",
            "bucket": "b",
            "auth_method": "access_key",
            "provider_specific_details": {"aws_access_key_id": "AKIA"},
        },  # access_key needs secret and region
    ]
    for body in invalid:
        r = http.post("/files/v1/data-sources", headers=key, json=body)
        assert r.status_code == 400 and r.json()["error"] == "bad_request", body
    legacy = {
        "provider": "aws",
        "bucket": "legacy",
        "auth_method": "access_key",
        "provider_specific_details": {"aws_access_key_id": "AKIA123"},
        "region": "eu-west-1",
        "secret": "very-secret-value",
    }
    assert http.post("/files/v1/data-sources", headers=key, json=legacy).status_code == 200
    listed = http.get("/files/v1/data-sources", headers=key)
    assert "very-secret-value" not in listed.text
    rows = {d["bucket"]: d for d in listed.json()["data_sources"]}
    assert set(rows) == {"in", "legacy"} and rows["legacy"]["region"] == "eu-west-1"
    assert set(rows["in"]) == {
        "data_source_id",
        "name",
        "provider",
        "bucket",
        "region",
        "auth_method",
        "created_at",
    }
    # the probe is data: 200 either way
    failed = http.post(f"/files/v1/data-sources/{ds_id}/test", headers=key).json()
    assert failed["result"] == "failed" and failed["checks"] == {"read": False, "write": False}
    (tmp_path / "buckets" / "in").mkdir(parents=True)
    assert http.post(f"/files/v1/data-sources/{ds_id}/test", headers=key).json() == {
        "result": "ok",
        "checks": {"read": True, "write": True},
        "message": "Read and write access to in verified",
    }
    assert http.post("/files/v1/data-sources/ds-nope/test", headers=key).status_code == 404
    # GCS registers only after bucket-control verification
    gcp = {
        "provider": "gcp",
        "bucket": "gbucket",
        "auth_method": "service_account",
        "provider_specific_details": {
            "gcp_project_id": "p",
            "target_sa_email": "sa@p.iam.gserviceaccount.com",
        },
    }
    assert http.post("/files/v1/data-sources", headers=key, json=gcp).status_code == 503
    (tmp_path / "buckets" / "gbucket").mkdir()
    assert http.post("/files/v1/data-sources", headers=key, json=gcp).status_code == 400
    (tmp_path / "buckets" / "gbucket" / ".mathpix-verify").write_text(ext)
    assert http.post("/files/v1/data-sources", headers=key, json=gcp).status_code == 200
    # delete: not idempotent, and later submissions lose the bucket
    assert http.delete(f"/files/v1/data-sources/{ds_id}", headers=key).json() == {
        "data_source_id": ds_id,
        "status": "deleted",
    }
    assert http.delete(f"/files/v1/data-sources/{ds_id}", headers=key).status_code == 404
    r = http.post("/files/v1/uri", headers=key, json={"source_uri": "s3://in/a.pdf"})
    assert r.status_code == 404 and r.json()["error"] == "data_source_not_found"


def test_buckets_in_and_results_written_back(srv, http, key, tmp_path):
    root = tmp_path / "buckets"
    pdfs = {f"batch/doc{i}.pdf": make_pdf(i + 1) for i in range(3)}
    for name, data in pdfs.items():
        (root / "archive" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "archive" / name).write_bytes(data)
    (root / "results").mkdir()
    (root / "container").mkdir()
    (root / "container" / "az.pdf").write_bytes(make_pdf(1))
    ext = http.get("/files/v1/onboarding/identities", headers=key).json()["aws"]["external_id"]
    for bucket in ("archive", "results"):
        assert (
            http.post("/files/v1/data-sources", headers=key, json=_aws(ext, bucket)).status_code
            == 200
        )
    azure = {
        "provider": "azure",
        "bucket": "container",
        "auth_method": "azure_ad",
        "provider_specific_details": {"azure_tenant_id": "t", "storage_account": "acct1"},
    }
    assert http.post("/files/v1/data-sources", headers=key, json=azure).status_code == 200
    files = [
        {
            "source_uri": f"s3://archive/{name}",
            "custom_id": f"d{i}",
            "destination_basename": f"out-{i}",
        }
        for i, name in enumerate(pdfs)
    ]
    files.append(
        {"source_uri": "https://acct1.blob.core.windows.net/container/az.pdf", "custom_id": "az"}
    )
    files.append(
        {
            "source_uri": "https://acct2.blob.core.windows.net/container/az.pdf",
            "custom_id": "other-acct",
        }
    )
    files.append({"source_uri": "s3://archive/missing.pdf", "custom_id": "missing"})
    body = {
        "job_id": "archive-run",
        "files": [{**f, "destination_uri": "s3://results/converted"} for f in files],
        "conversion_formats": {"md": True},
    }
    assert http.post("/files/v1/jobs", headers=key, json=body).status_code == 200
    done = wait_job(http, key, "archive-run")
    assert (done["files_completed"], done["files_errored"]) == (4, 2)
    written = sorted(p.name for p in (root / "results" / "converted").iterdir())
    assert written == sorted(
        [f"out-{i}.{e}" for i in range(3) for e in ("mmd", "md", "lines.json", "lines.mmd.json")]
        + [
            f"{fid}.{e}"
            for fid in [
                http.get("/files/v1/jobs/archive-run/files/az", headers=key).json()["file_id"]
            ]
            for e in ("mmd", "md", "lines.json", "lines.mmd.json")
        ]
    )
    for i, data in enumerate(pdfs.values()):
        assert (root / "results" / "converted" / f"out-{i}.mmd").read_text() == echo_mmd(
            data, i + 1
        )
    status = http.get("/files/v1/jobs/archive-run/files/d0", headers=key).json()
    assert (
        status["destination_uri"] == "s3://results/converted"
        and status["destination_basename"] == "out-0"
    )
    errors = {
        f["custom_id"]: http.get(f"/files/v1/{f['file_id']}", headers=key).json()["error"]
        for f in all_files(http, key, "archive-run", status="error")
    }
    assert errors == {"other-acct": "data_source_not_found", "missing": "pdf_download_error"}


# --------------------------------------------------------------------------- webhooks


def _verify(secret: str, delivery: dict[str, Any]) -> bool:
    header = delivery["headers"]["mathpix-signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    body = json.dumps(delivery["json"], separators=(",", ":")).encode()
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def wait_inbox(
    srv: LocalServer, name: str, count: int, timeout: float = 10
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = srv.inbox(name)
        if len(got) >= count:
            return got
        time.sleep(0.02)
    raise AssertionError(f"inbox {name}: {srv.inbox(name)}")


def test_webhook_config_and_signed_test_delivery(srv, http, key):
    secret = http.get("/files/v1/webhook-config", headers=key).json()["signing_secret"]
    assert (
        secret
        == http.get("/files/v1/webhook-config", headers=srv.credentials()).json()["signing_secret"]
    )
    r = http.post(
        "/files/v1/webhook-config/test",
        headers=key,
        json={"callback_url": srv.inbox_url("hook"), "callback_headers": {"X-Token": "t0k"}},
    )
    assert r.json() == {"status": "delivered", "response_code": 200, "detail": None}
    (delivery,) = srv.inbox("hook")
    assert delivery["json"]["event"] == "file.completed"
    assert delivery["json"]["file_id"] == "00000000-0000-0000-0000-000000000000"
    assert delivery["headers"]["x-token"] == "t0k" and _verify(secret, delivery)
    refused = http.post(
        "/files/v1/webhook-config/test",
        headers=key,
        json={"callback_url": srv.url + "/_local/files/nothing-here"},
    ).json()
    assert refused["status"] == "failed" and refused["response_code"] == 405
    reserved = http.post(
        "/files/v1/webhook-config/test",
        headers=key,
        json={"callback_url": srv.inbox_url("x"), "callback_headers": {"Mathpix-Signature": "x"}},
    )
    assert reserved.status_code == 400
    for _ in range(8):
        http.post(
            "/files/v1/webhook-config/test",
            headers=key,
            json={"callback_url": srv.inbox_url("spam")},
        )
    limited = http.post(
        "/files/v1/webhook-config/test", headers=key, json={"callback_url": srv.inbox_url("spam")}
    )
    assert limited.status_code == 429


def test_webhook_url_rules_without_the_test_switch():
    with LocalServer() as srv, httpx.Client(base_url=srv.url) as http:
        key = {"app_key": srv.app_key}
        for url, needle in (
            ("http://example.com/hook", "must be https"),
            ("https://127.0.0.1/hook", "private network"),
            ("https://localhost/hook", "private network"),
            ("https://10.1.2.3/hook", "private network"),
        ):
            r = http.post("/files/v1/webhook-config/test", headers=key, json={"callback_url": url})
            assert r.status_code == 400 and needle in r.json()["error_info"]["message"]
            assert r.json()["error_info"]["message"].startswith("callback_url: ")


def test_file_and_job_notifications(srv, http, key):
    secret = http.get("/files/v1/webhook-config", headers=key).json()["signing_secret"]
    url = srv.host_file(make_pdf(1), "a.pdf")
    one = http.post(
        "/files/v1/uri",
        headers=key,
        json={
            "source_uri": url,
            "callback_url": srv.inbox_url("single"),
            "callback_headers": {"Authorization": "Bearer abc"},
        },
    ).json()["file_id"]
    (note,) = wait_inbox(srv, "single", 1)
    assert note["json"]["event"] == "file.completed" and note["json"]["file_id"] == one
    assert note["json"]["status"] == "completed" and note["json"]["num_pages"] == 1
    assert note["headers"]["authorization"] == "Bearer abc" and _verify(secret, note)
    # a job: job.completed only once finalized (its default event), per-file events on request
    body = {
        "job_id": "hooked",
        "files": [
            {"source_uri": url, "custom_id": "ok"},
            {"source_uri": "s3://none/x.pdf", "custom_id": "bad"},
        ],
        "callback_url": srv.inbox_url("job"),
    }
    http.post("/files/v1/jobs", headers=key, json=body)
    wait_job(http, key, "hooked")
    time.sleep(0.2)
    assert srv.inbox("job") == []  # not finalized yet
    http.post("/files/v1/jobs/hooked/finalize", headers=key)
    (done,) = wait_inbox(srv, "job", 1)
    assert done["json"]["event"] == "job.completed" and done["json"]["job_id"] == "hooked"
    assert (done["json"]["files_completed"], done["json"]["files_errored"]) == (1, 1)
    assert _verify(secret, done)
    per_file = {
        "job_id": "per-file",
        "files": [{"source_uri": url}, {"source_uri": "gs://none/x.pdf"}],
        "callback_url": srv.inbox_url("files"),
        "callback_events": ["file.error"],
    }
    http.post("/files/v1/jobs", headers=key, json=per_file)
    (err,) = wait_inbox(srv, "files", 1)
    assert err["json"]["event"] == "file.error" and err["json"]["error"] == "data_source_not_found"
    http.post("/files/v1/jobs/per-file/finalize", headers=key)
    time.sleep(0.2)
    assert len(srv.inbox("files")) == 1  # job.completed was not asked for
    silent = {"source_uri": url, "callback_url": srv.inbox_url("silent"), "callback_events": []}
    wait_file(http, key, http.post("/files/v1/uri", headers=key, json=silent).json()["file_id"])
    time.sleep(0.1)
    assert srv.inbox("silent") == []


# --------------------------------------------------------------------------- scale


def test_thousand_documents_with_injected_errors(tmp_path):
    root = tmp_path / "buckets"
    (root / "docs").mkdir(parents=True)
    pdf = make_pdf(1)
    for i in range(990):
        (root / "docs" / f"{i:04d}.pdf").write_bytes(pdf)
    faults = FileFaults(match=("flaky-",), error_id="pdf_decode_error")
    with (
        LocalServer(bucket_root=root, file_faults=faults, pdf_step_delay=0.01) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as http,
    ):
        key = {"app_key": srv.app_key}
        ext = http.get("/files/v1/onboarding/identities", headers=key).json()["aws"]["external_id"]
        http.post("/files/v1/data-sources", headers=key, json=_aws(ext, "docs"))
        items = [
            {
                "source_uri": f"s3://docs/{i:04d}.pdf",
                "custom_id": ("flaky-" if i % 50 == 7 else "doc-") + str(i),
            }
            for i in range(1000)  # 990..999 are not in the bucket
        ]
        r = http.post("/files/v1/jobs", headers=key, json={"job_id": "thousand", "files": items})
        assert r.json() == {"job_id": "thousand", "file_count": 1000}
        done = wait_job(http, key, "thousand", timeout=60)
        flaky = sum(1 for i in range(1000) if i % 50 == 7)
        assert (done["files_completed"], done["files_errored"]) == (1000 - flaky - 10, flaky + 10)
        errors = all_files(http, key, "thousand", status="error", limit=7)
        assert len(errors) == flaky + 10 and len({e["file_id"] for e in errors}) == len(errors)
        everything = all_files(http, key, "thousand", limit=1000)
        assert [f["custom_id"] for f in everything] == [item["custom_id"] for item in items]
        sample = http.get("/files/v1/jobs/thousand/files/doc-500", headers=key).json()
        assert http.get(f"/files/v1/{sample['file_id']}.mmd", headers=key).text == echo_mmd(pdf, 1)


def test_two_hundred_thousand_items_are_accepted_and_deferred():
    with LocalServer(files_workers=1) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        key = {"app_key": srv.app_key}
        items = [{"source_uri": f"s3://unregistered/{i}.pdf"} for i in range(200_000)]
        r = http.post("/files/v1/jobs", headers=key, json={"job_id": "huge", "files": items})
        assert r.status_code == 200 and r.json() == {"job_id": "huge", "file_count": 200_000}
        status = http.get("/files/v1/jobs/huge", headers=key).json()
        assert status["file_count"] == 200_000 and status["status"] == "processing"
        page = http.get("/files/v1/jobs/huge/files", headers=key, params={"limit": 1000}).json()
        assert len(page["files"]) == 1000 and page["next_page_token"]
        over = http.post("/files/v1/jobs", headers=key, json={"files": items + items[:1]})
        assert over.status_code == 400 and "200000" in over.json()["error_info"]["message"]


# --------------------------------------------------------------------------- restarts


def test_state_dir_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    pdf = make_pdf(2)
    with (
        LocalServer(files_state_dir=state, port=0) as first,
        httpx.Client(base_url=first.url) as http,
    ):
        key = {"app_key": first.app_key}
        app_key = first.app_key
        done_id = http.post(
            "/files/v1",
            headers=key,
            files={"file": ("a.pdf", pdf)},
            data={"options_json": '{"conversion_formats": {"md": true}}'},
        ).json()["file_id"]
        wait_file(http, key, done_id)
        secret = http.get("/files/v1/webhook-config", headers=key).json()["signing_secret"]
        first.configure(pdf_step_delay=5.0)  # the next ones will still be running at the "crash"
        items = [
            {"source_uri": first.host_file(pdf, "b.pdf"), "custom_id": f"c{i}"} for i in range(3)
        ]
        http.post("/files/v1/jobs", headers=key, json={"job_id": "survivor", "files": items})
        http.post(
            "/files/v1",
            headers=key,
            files={"file": ("up.pdf", pdf)},
            data={"job_id": "survivor", "custom_id": "up"},
        )
        assert http.get("/files/v1/jobs/survivor", headers=key).json()["status"] == "processing"
    # items' URLs pointed at the first server; the restarted one reads its uploads from disk
    with (
        LocalServer(files_state_dir=state, app_key=app_key) as second,
        httpx.Client(base_url=second.url) as http,
    ):
        key = {"app_key": second.app_key}
        assert http.get(f"/files/v1/{done_id}.md", headers=key).text == echo_mmd(pdf, 2)
        assert http.get("/files/v1/webhook-config", headers=key).json()["signing_secret"] == secret
        done = wait_job(http, key, "survivor")
        assert done["file_count"] == 4 and done["files_completed"] == 1  # the upload
        up = http.get("/files/v1/jobs/survivor/files/up", headers=key).json()
        assert up["status"] == "completed"
        assert http.get(f"/files/v1/{up['file_id']}.mmd", headers=key).text == echo_mmd(pdf, 2)
