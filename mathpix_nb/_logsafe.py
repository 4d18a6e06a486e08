"""Keep secrets out of the HTTP libraries' own log lines.

httpx logs every request at INFO as ``HTTP Request: GET <url> ...``. Our requests carry keys
and tokens in headers, never in URLs, with one exception the API imposes:
``GET``/``DELETE v3/app-tokens/{token}`` puts an app token in the path. A filter on the
``httpx`` and ``httpcore`` loggers masks that path segment (and anything shaped like an app
token) before any handler sees the record, whatever the token's shape.
"""

from __future__ import annotations

import logging
import re

from ._exceptions import redact

__all__ = ["install_log_filter"]

_TOKEN_PATH = re.compile(r"(/app-tokens/)[^/?#\s\"']+")
_LOGGERS = ("httpx", "httpcore")


def mask(text: str) -> str:
    """``text`` with app-token path segments and token-shaped strings masked."""
    return redact(_TOKEN_PATH.sub(r"\1***", text))


class _SecretFilter(logging.Filter):
    """Rewrites a record's message and arguments with :func:`mask` (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(mask(str(a)) if _needs_mask(a) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: mask(str(v)) if _needs_mask(v) else v for k, v in args.items()}
        return True


def _needs_mask(value: object) -> bool:
    if isinstance(value, (int, float)) or value is None:
        return False
    text = str(value)
    return mask(text) != text


_FILTER = _SecretFilter()


def install_log_filter() -> None:
    """Add the filter to the HTTP libraries' loggers once (idempotent, cheap)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
