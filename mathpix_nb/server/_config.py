"""Tunables of the local server: the behaviour models (latency, limits, faults) and the
answers to the reference's open questions. Frozen; ``LocalServer.configure`` swaps in a copy."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from ._files_config import FileFaults, check_files_options

FAULT_KINDS = ("http_5xx", "sys_exception", "drop", "slow", "token_expired")

ExpiredTokenMode = Literal["200", "401"]
ResultsOrder = Literal["newest", "oldest"]
TokenExpiresFormat = Literal["ms", "ms_string", "seconds"]
AppKeyOnly = Literal["accept", "docs", "everywhere"]
ConverterBackend = Literal["auto", "builtin"]
StreamFormat = Literal["auto", "sse", "ndjson"]
StrokesSessionMode = Literal["auto", "append", "replace"]


@dataclass(frozen=True)
class Faults:
    """Injected failures, each drawn with its own rate (0..1, summing to at most 1).

    Args:
        http_5xx: answer ``status_5xx`` with a small HTML body, as a gateway would.
        sys_exception: answer HTTP 200 with the ``sys_exception`` error envelope.
        drop: close the connection without sending any response.
        slow: wait ``slow_seconds`` before handling the request normally.
        token_expired: treat a valid app token as expired. Only requests authenticated with
            ``app_token`` get it (in ``sequence`` it waits for the next such request).
        seed: the draws are deterministic: the n-th request with the same endpoint and the
            same body (or query) gets the same fault for the same seed, whatever the arrival
            order of other requests.
        sequence: faults (kind names or ``None`` for "no fault") given, in arrival order, to
            the first matching requests before the random draws start, for exact scenarios
            such as ``("http_5xx", "drop", None)``.
        endpoints: endpoint templates the faults apply to (e.g. ``("/v3/text",)``); ``None``
            means every ``/v3`` and ``/files`` endpoint.
    """

    http_5xx: float = 0.0
    sys_exception: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    token_expired: float = 0.0
    slow_seconds: float = 2.0
    status_5xx: int = 503
    seed: int = 0
    sequence: tuple[str | None, ...] = ()
    endpoints: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        total = 0.0
        for kind in FAULT_KINDS:
            rate = getattr(self, kind)
            if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{kind} must be a rate between 0 and 1, got {rate!r}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"Faults rates add up to {total:.3f}; their sum must be at most 1")
        if not 500 <= self.status_5xx <= 599:
            raise ValueError(f"Faults.status_5xx must be a 5xx status, got {self.status_5xx!r}")
        if self.slow_seconds < 0:
            raise ValueError("Faults.slow_seconds must be >= 0")
        object.__setattr__(self, "sequence", tuple(self.sequence))
        for entry in self.sequence:
            if entry is not None and entry not in FAULT_KINDS:
                raise ValueError(
                    f"Faults.sequence has unknown fault {entry!r}; use one of {FAULT_KINDS} or None"
                )
        if self.endpoints is not None:
            object.__setattr__(self, "endpoints", tuple(self.endpoints))


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``LocalServer(...)`` and ``server.configure(...)`` accept besides the engine,
    regions, ports and credentials. See ``mathpix_nb.server`` for the meaning of each."""

    latency_base: float = 0.0
    latency_per_kb: float = 0.0
    max_concurrency: int | None = None
    rate_limit_per_minute: int | None = None
    retry_after_header: bool = False
    monthly_quota: int | None = None
    monthly_page_quota: int | None = None
    async_delay: float = 0.0
    faults: Faults | None = None
    # Files API (/files/v1): see _files_config.py and docs/files-api.md
    files_jobs_response: Literal["defer", "reject"] = "defer"
    files_workers: int = 64
    files_max_items: int = 200_000
    bucket_root: str | os.PathLike[str] | None = None
    files_state_dir: str | os.PathLike[str] | None = None
    webhook_allow_http: bool = False
    file_faults: FileFaults | None = None
    expired_token_mode: ExpiredTokenMode = "200"
    token_min_expires: float = 30
    token_max_expires: float = 43200
    token_expires_format: TokenExpiresFormat = "ms"
    results_order: ResultsOrder = "newest"
    results_page_cap: int | None = None  # per_page above it is cut to it, silently
    batch_id_type: Literal["int", "str"] = "int"
    pdf_step_delay: float = 0.05
    pdf_not_ready_status: Literal[404, 202] = 404
    max_body_bytes: int = 5 * 1024 * 1024
    max_base64_bytes: int = 2 * 1024 * 1024
    max_pdf_bytes: int = 1024 * 1024 * 1024
    max_download_bytes: int = 10 * 1024 * 1024
    download_timeout: float = 15.0
    max_strokes_bytes: int = 512 * 1024
    max_converter_bytes: int = 10 * 1024 * 1024
    too_large_status: Literal[200, 413] = 200
    max_json_depth: int = 64
    app_key_only: AppKeyOnly = "accept"
    cors_allow_origins: tuple[str, ...] = ("*",)
    max_log_records: int = 100_000
    max_stored_results: int = 100_000
    max_stored_documents: int = 1_000
    max_inbox_messages: int = 1_000
    on_demand_conversions: bool = True
    conversion_wait: float = 5.0
    failing_conversions: tuple[str, ...] = ()
    converter_backend: ConverterBackend = "auto"
    converter_timeout: float = 60.0
    pdf_stream_format: StreamFormat = "auto"
    strokes_session_mode: StrokesSessionMode = "auto"
    latex_legacy_fields: bool = True

    def __post_init__(self) -> None:
        for name in (
            "latency_base",
            "latency_per_kb",
            "async_delay",
            "pdf_step_delay",
            "download_timeout",
            "converter_timeout",
            "conversion_wait",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name in (
            "max_concurrency",
            "rate_limit_per_minute",
            "monthly_quota",
            "monthly_page_quota",
            "results_page_cap",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if self.expired_token_mode not in ("200", "401"):
            raise ValueError(
                f"expired_token_mode must be '200' or '401', got {self.expired_token_mode!r}"
            )
        if self.results_order not in ("newest", "oldest"):
            raise ValueError(
                f"results_order must be 'newest' or 'oldest', got {self.results_order!r}"
            )
        if self.token_expires_format not in ("ms", "ms_string", "seconds"):
            raise ValueError(
                "token_expires_format must be 'ms', 'ms_string' or 'seconds', "
                f"got {self.token_expires_format!r}"
            )
        if self.batch_id_type not in ("int", "str"):
            raise ValueError(f"batch_id_type must be 'int' or 'str', got {self.batch_id_type!r}")
        if self.pdf_not_ready_status not in (404, 202):
            raise ValueError("pdf_not_ready_status must be 404 or 202")
        if not 0 < self.token_min_expires <= self.token_max_expires:
            raise ValueError("token_min_expires must be > 0 and <= token_max_expires")
        for name in (
            "max_body_bytes",
            "max_base64_bytes",
            "max_pdf_bytes",
            "max_download_bytes",
            "max_strokes_bytes",
            "max_converter_bytes",
            "max_json_depth",
            "max_log_records",
            "max_stored_results",
            "max_stored_documents",
            "max_inbox_messages",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        choices: dict[str, tuple[object, ...]] = {
            "too_large_status": (200, 413),
            "app_key_only": ("accept", "docs", "everywhere"),
            "converter_backend": ("auto", "builtin"),
            "pdf_stream_format": ("auto", "sse", "ndjson"),
            "strokes_session_mode": ("auto", "append", "replace"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}, "
                    f"got {getattr(self, name)!r}"
                )
        object.__setattr__(self, "failing_conversions", tuple(self.failing_conversions))
        origins = self.cors_allow_origins
        if isinstance(origins, str):
            object.__setattr__(self, "cors_allow_origins", (origins,))
        elif not all(isinstance(o, str) for o in origins):
            raise ValueError(
                "cors_allow_origins must be origins like 'http://localhost:3000' or '*'"
            )
        else:
            object.__setattr__(self, "cors_allow_origins", tuple(origins))
        if self.faults is not None and not isinstance(self.faults, Faults):
            raise TypeError(f"faults must be a Faults(...) object or None, got {type(self.faults)}")
        check_files_options(self)

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes`` applied; unknown names raise ``TypeError`` naming them."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown LocalServer option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)
