"""The Files API methods of both clients (``files_*``) against the local server over real
loopback HTTP: submissions, jobs, listings, downloads, deletes, data sources, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    FileEntry,
    FilesJob,
    FileStatus,
    ImageError,
    InvalidRequestError,
    JobSubmission,
    NotAllowedError,
    NotFoundError,
    PdfError,
    PollTimeoutError,
    TransportError,
    verify_webhook,
)
from mathpix_nb._retry import RetryPolicy
from mathpix_nb.server import Faults, LocalServer

from .conftest import Api

pytestmark = pytest.mark.anyio


def make_pdf(pages: int = 1) -> bytes:
    from PIL import Image

    images = [Image.new("RGB", (200, 100), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def echo_mmd(pdf: bytes, pages: int) -> str:
    sha = hashlib.sha256(pdf).hexdigest()[:12]
    return "\n\n".join(f"echo pdf page {n} sha:{sha}" for n in range(1, pages + 1))


@pytest.fixture(scope="module")
def bucket_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("buckets")


@pytest.fixture(scope="module")
def files_server(bucket_root: Path) -> Iterator[LocalServer]:
    with LocalServer(
        regions=("global", "eu"),
        bucket_root=bucket_root,
        webhook_allow_http=True,
        pdf_step_delay=0.01,
    ) as server:
        yield server


@pytest.fixture
def fs(files_server: LocalServer) -> Iterator[LocalServer]:
    files_server.configure(faults=None, pdf_step_delay=0.01)
    files_server.clear_log()
    yield files_server
    files_server.configure(faults=None, pdf_step_delay=0.01)


def client(make: Any, srv: LocalServer, **kwargs: Any) -> Api:
    fast = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
    return make(app_id=srv.app_id, app_key=srv.app_key, region_urls=srv.urls, retry=fast, **kwargs)


async def collect(iterator: Any) -> list[Any]:
    if hasattr(iterator, "__aiter__"):
        return [item async for item in iterator]
    return list(iterator)


def files_requests(srv: LocalServer) -> int:
    return sum(1 for r in srv.log if r.endpoint.startswith("/files/"))


async def test_submit_wait_download_delete(make, fs):
    api = client(make, fs)
    pdf = make_pdf(2)
    file_id = await api.call(
        "files_submit", fs.host_file(pdf, "paper.pdf"), outputs=("md",), filename="Paper.pdf"
    )
    status = await api.call("files_wait", file_id, timeout=10)
    assert isinstance(status, FileStatus) and status.ok and status.done
    assert (status.num_pages, status.percent_done, status.filename) == (2, 100.0, "Paper.pdf")
    assert status.formats == {"md": "completed"} and status.error_id is None
    assert (await api.call("files_download", file_id)).decode() == echo_mmd(pdf, 2)
    assert (await api.call("files_download", file_id, "md")).decode() == echo_mmd(pdf, 2)
    lines = json.loads(await api.call("files_download", file_id, "lines.json"))
    assert [p["page"] for p in lines["pages"]] == [1, 2]
    with pytest.raises(InvalidRequestError) as never:
        await api.call("files_download", file_id, "html")
    assert (never.value.error_id, never.value.status_code) == ("unsupported_format", 415)
    assert "outputs=" in str(never.value)  # the fix names the argument to change
    gone = {"file_id": file_id, "status": "deleted"}
    assert await api.call("files_delete", file_id) == gone
    assert await api.call("files_delete", file_id) == gone
    with pytest.raises(NotFoundError) as missing:
        await api.call("files_status", file_id)
    assert (missing.value.error_id, missing.value.status_code) == ("not_found", 404)
    # every single-document submit carries an Idempotency-Key, so a resend is harmless
    uri = [r for r in fs.log if r.endpoint == "/files/v1/uri"]
    assert len(uri) == 1 and uri[0].auth_mode == "keys"


async def test_upload_path_bytes_and_file_objects(make, fs, tmp_path):
    api = client(make, fs)
    pdf = make_pdf(1)
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf)
    with path.open("rb") as handle:
        sources = {"path": path, "bytes": pdf, "file": handle, "str": str(path)}
        ids = {
            name: await api.call(
                "files_upload", doc, job_id="uploads", custom_id=f"{name}-{api.is_async}"
            )
            for name, doc in sources.items()
        }
    for name, file_id in ids.items():
        found = await api.call("files_by_custom_id", "uploads", f"{name}-{api.is_async}")
        assert found.file_id == file_id and found.job_id == "uploads"
        final = await api.call("files_wait", file_id, timeout=10)
        assert final.ok and final.filename in ("scan.pdf", "document.pdf")
        assert (await api.call("files_download", file_id)).decode() == echo_mmd(pdf, 1)
    again = await api.call("files_upload", pdf, job_id="uploads", custom_id=f"path-{api.is_async}")
    assert again == ids["path"]  # the pair names the file: nothing new is created
    with pytest.raises(ImageError) as missing:
        await api.call("files_upload", tmp_path / "nope.pdf")
    assert "not found" in str(missing.value)


async def test_job_listing_paging_counters_and_finalize(make, fs):
    api = client(make, fs)
    pdf = make_pdf(1)
    url = fs.host_file(pdf, "doc.pdf")
    job_id = f"batch-{api.is_async}"
    files = [
        {"source_uri": url, "custom_id": "a", "filename": "A.pdf"},
        {"source_uri": url, "custom_id": "b", "page_ranges": "1"},
        {"source_uri": "s3://never-registered/x.pdf", "custom_id": "c"},
        {"source_uri": "ftp://example.com/x.pdf", "custom_id": "d"},
        {"source_uri": url, "custom_id": "e"},
    ]
    submitted = await api.call("files_job", files, job_id=job_id, outputs=["md"])
    assert submitted == JobSubmission(job_id, 5, (), submitted.raw)
    job = await api.call("files_wait_job", job_id, timeout=20, poll_interval=0.05)
    assert isinstance(job, FilesJob) and job.done and job.files_pending == 0
    assert (job.file_count, job.files_completed, job.files_errored) == (5, 3, 2)
    entries = await collect(api.client.files_list(job_id, page_size=2))
    assert [e.custom_id for e in entries] == ["a", "b", "c", "d", "e"]
    assert all(isinstance(e, FileEntry) and e.status is None for e in entries)
    errors = await collect(api.client.files_list(job_id, status="error", page_size=1))
    assert [(e.custom_id, e.status) for e in errors] == [("c", "error"), ("d", "error")]
    why = [(await api.call("files_status", e.file_id)).error_id for e in errors]
    assert why == ["data_source_not_found", "invalid_source_uri"]
    a = await api.call("files_by_custom_id", job_id, "a")
    assert a.filename == "A.pdf" and a.formats == {"md": "completed"}
    listed = [j["job_id"] for j in await collect(api.client.files_jobs(page_size=1))]
    assert job_id in listed
    # a replay queues only the items whose file errored; after finalize the job is closed
    replay = await api.call("files_job", files, job_id=job_id, outputs=["md"])
    assert replay.file_count == 5  # items submitted
    assert (await api.call("files_job_status", job_id)).file_count == 7  # c and d again
    assert (await api.call("files_by_custom_id", job_id, "a")).file_id == a.file_id
    final = await api.call("files_finalize", job_id)
    assert final["job_id"] == job_id and final["finalized_at"]
    with pytest.raises(ConflictError):
        await api.call("files_job", [url], job_id=job_id)
    # Idempotency-Key (a random one when none is given) covers a job without job_id
    first = await api.call("files_job", [url, url], idempotency_key=f"k-{api.is_async}")
    second = await api.call("files_job", [url, url], idempotency_key=f"k-{api.is_async}")
    assert first.job_id == second.job_id and first.file_count == 2
    with pytest.raises(ConfigurationError):
        await collect(api.client.files_list(job_id, status="done"))


def test_the_rejected_variant_is_parsed():
    with LocalServer(files_jobs_response="reject") as srv:
        from mathpix_nb import Mathpix

        with Mathpix(srv.app_id, srv.app_key, base_url=srv.url) as mpx:
            url = srv.host_file(make_pdf(1), "a.pdf")
            got = mpx.files_job([url, "s3://x/y.pdf"], idempotency_key="rejects")
            assert got.file_count == 1
            assert got.rejected == (
                {
                    "index": 1,
                    "source_uri": "s3://x/y.pdf",
                    "custom_id": None,
                    "reason": "data_source_not_found",
                },
            )


async def test_not_ready_download_conflicting_delete_and_wait_timeout(make, fs):
    api = client(make, fs)
    fs.configure(pdf_step_delay=0.3)
    file_id = await api.call("files_submit", fs.host_file(make_pdf(1), "slow.pdf"))
    with pytest.raises(PdfError) as early:
        await api.call("files_download", file_id)
    assert early.value.error_id == "format_not_ready" and early.value.status_code == 404
    with pytest.raises(ConflictError) as busy:
        await api.call("files_delete", file_id)
    assert busy.value.error_id == "conflict" and "still processing" in str(busy.value)
    with pytest.raises(PollTimeoutError) as late:
        await api.call("files_wait", file_id, timeout=0.1, poll_interval=0.05)
    assert f"files_status('{file_id}')" in str(late.value)
    assert (await api.call("files_wait", file_id, timeout=10)).ok


async def test_errors_map_to_the_exception_tree_and_bad_input_sends_nothing(make, fs):
    api = client(make, fs)
    with pytest.raises(InvalidRequestError) as bad:
        await api.call("files_submit", "ftp://example.com/a.pdf")
    assert bad.value.error_id == "bad_request" and "source_uri" in str(bad.value)
    with pytest.raises(NotFoundError) as private:
        await api.call("files_submit", "s3://unregistered-bucket/a.pdf")
    assert private.value.error_id == "data_source_not_found"
    with pytest.raises(NotFoundError):
        await api.call("files_job_status", "no-such-job")
    before = files_requests(fs)
    refused = [
        ("files_submit", ("https://e.com/a.pdf",), {"custom_id": "x"}),
        ("files_submit", ("https://e.com/a.pdf",), {"outputs": ("doc",)}),
        ("files_submit", ("https://e.com/a.pdf",), {"options": {"job_id": "j"}}),
        ("files_submit", ("https://e.com/a.pdf",), {"callback_events": ["file.error"]}),
        ("files_submit", ("https://e.com/a.pdf",), {"job_id": "has space"}),
        ("files_job", ([],), {}),
        ("files_job", ([{"source_uri": "https://e.com/a", "custom_id": "x"}],), {}),
        ("files_job", ([{"source_uri": "https://e.com/a", "customid": "x"}],), {"job_id": "j"}),
    ]
    for name, args, kwargs in refused:
        with pytest.raises(ConfigurationError):
            await api.call(name, *args, **kwargs)
    dup = [{"source_uri": "https://e.com/a", "custom_id": "x"}] * 2
    with pytest.raises(ConfigurationError, match="twice"):
        await api.call("files_job", dup, job_id="j")
    assert files_requests(fs) == before  # refused before anything was sent
    with pytest.raises(AuthenticationError) as wrong:
        await make(app_id=fs.app_id, app_key="wrong-key", region_urls=fs.urls).call(
            "files_status", "x"
        )
    assert wrong.value.error_id == "unauthorized" and "wrong-key" not in str(wrong.value)
    token_only = make(app_token="token_" + "a" * 32, region_urls=fs.urls)
    with pytest.raises(NotAllowedError):
        await token_only.call("files_submit", "https://e.com/a.pdf")
    assert files_requests(fs) == before + 1  # only the wrong-key request went out


async def test_faults_are_retried_and_uncertain_jobs_are_not_resent(make, fs):
    api = client(make, fs)
    url = fs.host_file(make_pdf(1), "a.pdf")
    fs.configure(faults=Faults(sequence=("http_5xx", "drop"), endpoints=("/files/v1/uri",)))
    file_id = await api.call("files_submit", url)  # 503, dropped, then accepted
    assert (await api.call("files_wait", file_id, timeout=10)).ok
    assert [r.status_code for r in fs.log if r.endpoint == "/files/v1/uri"] == [503, None, 200]
    # a job whose items have no custom_id cannot be replayed safely: not resent
    fs.configure(faults=Faults(sequence=("drop",), endpoints=("/files/v1/jobs",)))
    job_id = f"unsure-{api.is_async}"
    with pytest.raises(TransportError) as unsure:
        await api.call("files_job", [url], job_id=job_id)
    assert f"files_job_status('{job_id}')" in str(unsure.value)
    assert "custom_id" in str(unsure.value)
    # with custom ids on every item it is safe, so it is resent
    fs.configure(faults=Faults(sequence=("drop",), endpoints=("/files/v1/jobs",)))
    done = await api.call("files_job", [{"source_uri": url, "custom_id": "one"}], job_id=job_id)
    assert done.file_count == 1


async def test_data_sources_buckets_and_webhooks(make, fs, bucket_root):
    api = client(make, fs)
    bucket = f"inbox-{api.is_async}".lower()
    (bucket_root / bucket).mkdir(exist_ok=True)
    pdf = make_pdf(2)
    (bucket_root / bucket / "in.pdf").write_bytes(pdf)
    ids = await api.call("files_identities")
    details = {
        "iam_role_arn": "arn:aws:iam::1:role/r",
        "aws_external_id": ids["aws"]["external_id"],
    }
    ds_id = await api.call("files_data_source_register", "aws", bucket, "iam_role", details)
    with pytest.raises(ConflictError):
        await api.call("files_data_source_register", "aws", bucket, "iam_role", details)
    assert ds_id in [d["data_source_id"] for d in await api.call("files_data_sources")]
    assert (await api.call("files_data_source_test", ds_id))["result"] == "ok"
    secret = await api.call("files_webhook_secret")
    hook = f"client-{api.is_async}"
    file_id = await api.call(
        "files_submit",
        f"s3://{bucket}/in.pdf",
        destination_uri=f"s3://{bucket}/out",
        destination_basename="result",
        callback_url=fs.inbox_url(hook),
        callback_headers={"X-Token": "abc"},
    )
    assert (await api.call("files_wait", file_id, timeout=10)).ok
    assert (bucket_root / bucket / "out" / "result.mmd").read_text() == echo_mmd(pdf, 2)
    deadline = time.monotonic() + 5
    while not fs.inbox(hook) and time.monotonic() < deadline:
        time.sleep(0.02)
    (note,) = fs.inbox(hook)
    raw = json.dumps(note["json"], separators=(",", ":"))
    assert note["json"]["event"] == "file.completed" and note["json"]["file_id"] == file_id
    assert verify_webhook(note["headers"]["mathpix-signature"], raw, secret)
    assert not verify_webhook(note["headers"]["mathpix-signature"], raw + " ", secret)
    probe = await api.call("files_webhook_test", fs.inbox_url(hook + "-test"))
    assert probe == {"status": "delivered", "response_code": 200, "detail": None}
    assert (await api.call("files_data_source_delete", ds_id))["status"] == "deleted"
    with pytest.raises(NotFoundError):
        await api.call("files_data_source_delete", ds_id)


async def test_eu_files_stay_in_the_eu(make, fs):
    eu = client(make, fs, region="eu")
    file_id = await eu.call("files_submit", fs.host_file(make_pdf(1), "eu.pdf", region="eu"))
    assert (await eu.call("files_wait", file_id, timeout=10)).ok
    assert {r.region for r in fs.log if r.endpoint.startswith("/files/")} == {"eu"}
    with pytest.raises(NotFoundError):
        await client(make, fs).call("files_status", file_id)


def test_verify_webhook_rules():
    secret, body = "whsec_test", b'{"event":"job.completed","job_id":"j"}'
    now = 1_800_000_000

    def sign(t: int, key: str = secret) -> str:
        return hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()

    good = f"t={now},v1={sign(now)}"
    assert verify_webhook(good, body, secret, now=now)
    assert verify_webhook(good, body.decode(), secret, now=now + 299)
    assert not verify_webhook(good, body, secret, now=now + 301)  # replay window
    assert not verify_webhook(good, body, "whsec_other", now=now)
    assert verify_webhook(f"t={now},v1={sign(now, 'old')},v1={sign(now)}", body, secret, now=now)
    for header in ("", "garbage", f"t={now}", f"v1={sign(now)}", f"t=x,v1={sign(now)}"):
        assert not verify_webhook(header, body, secret, now=now)
    assert not verify_webhook(good, body, "", now=now)
