"""Retry policy: which failures are worth another try, and how long to wait.

Retried: per-minute 429, 5xx, ``sys_exception`` (HTTP 200 body), timeouts and dropped or
refused connections. Never retried: monthly-quota 429, authentication and bad input, because
sending the same request again cannot succeed. Waits grow exponentially with full jitter
(a random wait in ``[0, min(cap, base * 2**attempt)]``) so that many clients that failed
together do not retry together; a ``Retry-After`` header, when present, is honoured instead.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

import httpx

from ._exceptions import error_info

__all__ = ["RetryPolicy", "parse_retry_after"]

# Connection-level failures where a new attempt can succeed.
_RETRYABLE_EXC: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after(None) is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_id(response: httpx.Response) -> tuple[str | None, dict[str, object]]:
    if "json" not in response.headers.get("content-type", ""):
        return None, {}
    found = error_info(response.content)
    return (found.id, found.detail) if found else (None, {})


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; ``max_retries`` extra attempts after the first."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        from ._exceptions import ConfigurationError

        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool):
            raise ConfigurationError(f"max_retries must be an int, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"RetryPolicy {name} must be seconds >= 0, got {value!r}")

    def backoff(self, attempt: int) -> float:
        """Full-jitter wait before retry number ``attempt + 1``."""
        return self.rng.uniform(0.0, min(self.max_delay, self.base_delay * (2**attempt)))

    def delay_after_exception(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying after a transport exception, or None to give up."""
        if attempt >= self.max_retries or not isinstance(exc, _RETRYABLE_EXC):
            return None
        return self.backoff(attempt)

    def is_retryable_response(self, response: httpx.Response) -> bool:
        status = response.status_code
        if status == 429:
            _, info = _error_id(response)
            limit_name = str(info.get("limit_name") or "")
            return not limit_name.endswith("_monthly_limit")
        if status >= 500:
            return True
        if status == 200:
            # Most 200s are results (an ocr-results page can be megabytes): only decode the
            # body when it can hold an error envelope at all.
            if b'"error_info"' not in response.content:
                return False
            return _error_id(response)[0] in ("sys_exception", "connection_closed")
        return False

    def delay_after_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying after this answer, or None to keep it."""
        if attempt >= self.max_retries or not self.is_retryable_response(response):
            return None
        hinted = parse_retry_after(response.headers.get("retry-after"))
        if hinted is not None:
            if hinted > self.max_retry_after:
                return None  # the server asks for longer than we are willing to block
            # a little jitter on top of the hint keeps simultaneous clients apart
            return hinted + self.rng.uniform(0.0, min(1.0, self.base_delay))
        return self.backoff(attempt)
