"""Options of the local server's Files API (``/files/v1``) that ``ServerConfig`` carries:
the per-document fault model and the checks of the ``files_*`` / ``bucket_root`` /
``webhook_allow_http`` fields. No imports from the rest of the server (``_config`` uses it)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

FILES_JOBS_RESPONSES = ("defer", "reject")


@dataclass(frozen=True)
class FileFaults:
    """Per-document failures of Files API submissions: a chosen document ends in status
    ``"error"`` with ``error_info.id == error_id`` (and counts in ``files_errored``), the
    rest of its job carries on. The HTTP requests themselves succeed.

    Args:
        rate: fraction of documents that fail (0..1), drawn per document from ``seed`` and
            its ``source_uri`` / ``custom_id`` / ``filename``, so a rerun fails the same ones.
        match: documents whose ``custom_id``, ``filename`` or ``source_uri`` contains one of
            these strings always fail.
        seed: seeds the ``rate`` draws.
        error_id, message: what the failed file's ``error`` / ``error_info`` say.
    """

    rate: float = 0.0
    match: tuple[str, ...] = ()
    seed: int = 0
    error_id: str = "pdf_decode_error"
    message: str = "Injected failure: the document could not be processed"

    def __post_init__(self) -> None:
        if not isinstance(self.rate, (int, float)) or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FileFaults.rate must be a rate between 0 and 1, got {self.rate!r}")
        if isinstance(self.match, str):
            raise TypeError("FileFaults.match must be a tuple of strings, e.g. ('bad-',)")
        object.__setattr__(self, "match", tuple(self.match))
        if not all(isinstance(m, str) and m for m in self.match):
            raise ValueError("FileFaults.match must hold non-empty strings")
        if not isinstance(self.error_id, str) or not self.error_id:
            raise ValueError("FileFaults.error_id must be a non-empty string")

    def fails(self, *keys: str | None) -> bool:
        """Whether the document identified by ``keys`` (source, custom_id, filename) fails."""
        present = [k for k in keys if k]
        if any(m in k for m in self.match for k in present):
            return True
        if self.rate <= 0:
            return False
        draw = random.Random(f"{self.seed}|{'|'.join(present)}").random()
        return draw < self.rate


def check_files_options(config: Any) -> None:
    """Validate the Files API fields of a ``ServerConfig`` (called by its ``__post_init__``)."""
    if config.files_jobs_response not in FILES_JOBS_RESPONSES:
        raise ValueError(
            "files_jobs_response must be 'defer' (accept-and-defer, the docs' main page) or "
            f"'reject' (synchronous rejected[] list), got {config.files_jobs_response!r}"
        )
    workers = config.files_workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"files_workers must be an integer >= 1, got {workers!r}")
    for name in ("bucket_root", "files_state_dir"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a directory path or None, got {type(value).__name__}")
    if not isinstance(config.webhook_allow_http, bool):
        raise TypeError("webhook_allow_http must be True or False")
    faults = config.file_faults
    if faults is not None and not isinstance(faults, FileFaults):
        raise TypeError(f"file_faults must be a FileFaults(...) object or None, got {faults!r}")
    limit = config.files_max_items
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"files_max_items must be an integer >= 1, got {limit!r}")
