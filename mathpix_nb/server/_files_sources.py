"""Where Files API documents come from and where results go: ``source_uri`` /
``destination_uri`` parsing, registered data sources, and the emulated buckets.

A registered bucket ``B`` (S3 bucket, GCS bucket or Azure container) is the directory
``<bucket_root>/B``: ``s3://B/dir/a.pdf``, ``gs://B/dir/a.pdf`` and
``https://ACCOUNT.blob.core.windows.net/B/dir/a.pdf`` all read ``<bucket_root>/B/dir/a.pdf``
once a data source for ``B`` (and, on Azure, storage account ``ACCOUNT``) is registered.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._files_store import DataSource, FilesRegion

_AZURE_HOST = re.compile(r"^([a-z0-9]{3,24})\.blob\.core\.windows\.net$", re.IGNORECASE)

#: provider -> auth_method -> required provider_specific_details keys
AUTH_METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "aws": {
        "iam_role": ("iam_role_arn", "aws_external_id"),
        "access_key": ("aws_access_key_id",),
    },
    "azure": {"azure_ad": ("azure_tenant_id", "storage_account")},
    "gcp": {"service_account": ("gcp_project_id", "target_sa_email")},
}
VERIFY_OBJECT = ".mathpix-verify"


@dataclass(frozen=True)
class Location:
    """A parsed ``source_uri`` / ``destination_uri``."""

    kind: str  # "url" (fetched over http(s)) or "bucket"
    uri: str
    provider: str | None = None  # aws | gcp | azure for buckets
    bucket: str | None = None
    key: str = ""
    account: str | None = None  # Azure storage account


class LocationError(Exception):
    """A URI the Files API cannot use; ``error_id`` is the per-item error id."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


def parse_location(uri: Any, what: str = "source_uri") -> Location:
    """``s3://``, ``gs://``, Azure blob URLs (bucket locations) or any other http(s) URL."""
    if not isinstance(uri, str) or not uri.strip():
        raise LocationError("invalid_source_uri", f"{what} must be a non-empty string")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "gs"):
        if not parts.netloc:
            raise LocationError("invalid_source_uri", f"{what} {scheme}:// URI needs a bucket")
        provider = "aws" if scheme == "s3" else "gcp"
        return Location("bucket", uri, provider, parts.netloc, unquote(parts.path.lstrip("/")))
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        match = _AZURE_HOST.match(host)
        if match and scheme == "https":
            container, _, blob = unquote(parts.path.lstrip("/")).partition("/")
            if not container:
                raise LocationError(
                    "invalid_source_uri", f"{what} Azure blob URL needs /<container>/<blob>"
                )
            return Location("bucket", uri, "azure", container, blob, account=match.group(1))
        if not host:
            raise LocationError("invalid_source_uri", f"{what} URL has no host")
        return Location("url", uri)
    raise LocationError(
        "invalid_source_uri",
        f"{what} must be an https:// URL, an s3:// or gs:// URI or an Azure blob URL; "
        f"got scheme {parts.scheme or '(none)'!r}",
    )


def data_source_for(region: FilesRegion, loc: Location) -> DataSource | None:
    if loc.kind != "bucket" or loc.provider is None or loc.bucket is None:
        return None
    return region.find_source(loc.provider, loc.bucket, loc.account)


def object_path(
    root: str | os.PathLike[str] | None, loc: Location, *, key: str | None = None
) -> Path:
    """The local file behind a bucket location; ``LocationError`` if outside the bucket or
    no ``bucket_root`` is configured."""
    if root is None:
        raise LocationError(
            "pdf_download_error",
            "this local server emulates buckets in a directory: start it with "
            "LocalServer(bucket_root=...) to read or write s3://, gs:// or Azure objects",
        )
    assert loc.bucket is not None
    bucket_dir = (Path(root) / loc.bucket).resolve()
    target = (bucket_dir / (loc.key if key is None else key)).resolve()
    if target != bucket_dir and bucket_dir not in target.parents:
        raise LocationError("invalid_source_uri", f"{loc.uri} points outside its bucket")
    return target


def read_object(root: str | os.PathLike[str] | None, loc: Location, limit: int) -> bytes:
    """Bytes of a bucket object (blocking: run it in a worker thread)."""
    path = object_path(root, loc)
    try:
        size = path.stat().st_size
        if size > limit:
            raise LocationError("pdf_download_error", f"{loc.uri} is larger than {limit} bytes")
        with path.open("rb") as fh:
            return fh.read(limit + 1)
    except FileNotFoundError:
        raise LocationError("pdf_download_error", f"{loc.uri}: no such object") from None
    except IsADirectoryError:
        raise LocationError("pdf_download_error", f"{loc.uri} is not an object") from None
    except PermissionError:
        raise LocationError("pdf_download_error", f"{loc.uri}: access denied") from None


def write_objects(
    root: str | os.PathLike[str] | None, loc: Location, basename: str, outputs: dict[str, bytes]
) -> list[str]:
    """Write ``outputs`` (ext -> bytes) as ``<destination>/<basename>.<ext>``; returns the
    object keys written (blocking: run it in a worker thread)."""
    prefix = loc.key.strip("/")
    written = []
    for ext, data in outputs.items():
        key = f"{prefix}/{basename}.{ext}" if prefix else f"{basename}.{ext}"
        path = object_path(root, loc, key=key)
        bucket_dir = object_path(root, loc, key="")
        if not bucket_dir.is_dir():
            raise LocationError(
                "destination_write_error", f"bucket {loc.bucket!r} does not exist under bucket_root"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(key)
    return written


def probe(root: str | os.PathLike[str] | None, ds: DataSource) -> dict[str, Any]:
    """``POST /files/v1/data-sources/{id}/test``: read and write probes of the bucket."""
    if root is None:
        return {
            "result": "failed",
            "checks": {"read": False, "write": False},
            "message": "No bucket_root configured on this local server, so no bucket is reachable",
        }
    path = Path(root) / ds.bucket
    read = path.is_dir() and os.access(path, os.R_OK | os.X_OK)
    write = read and os.access(path, os.W_OK)
    if read and write:
        message = f"Read and write access to {ds.bucket} verified"
    elif not read:
        message = f"Cannot list {ds.bucket}: the bucket does not exist or access is denied"
    else:
        message = f"Can read {ds.bucket} but not write to it"
    return {
        "result": "ok" if read and write else "failed",
        "checks": {"read": read, "write": write},
        "message": message,
    }


def gcs_verified(root: str | os.PathLike[str] | None, bucket: str, external_id: str) -> bool | None:
    """Bucket-control verification of a GCS registration: ``<bucket>/.mathpix-verify`` must
    hold the group's ``external_id``. ``None`` when no bucket is reachable at all."""
    if root is None or not (Path(root) / bucket).is_dir():
        return None
    try:
        text = (Path(root) / bucket / VERIFY_OBJECT).read_text("utf-8", "replace")
    except OSError:
        return False
    return external_id in text


def private_host(host: str) -> bool:
    """True for ``localhost`` names and literal IPs on loopback, private, link-local or
    reserved networks (webhook URLs must be reachable from the internet). Names are not
    resolved: that would be blocking I/O in the request."""
    host = host.strip("[]").lower()
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )
