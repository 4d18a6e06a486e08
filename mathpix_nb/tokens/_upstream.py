"""The service's side of Mathpix: where to reach it and how to mint an app token.

The key is sent only to the configured upstream, only in the ``app_key``/``app_id`` headers
of ``POST v3/app-tokens``. Nothing raised from here carries the key, a token, or an upstream
body; callers of the service learn only that the upstream failed and, for a 429, when to retry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from .._config import REGION_URLS, normalize_region
from .._exceptions import ConfigurationError
from .._retry import parse_retry_after

# Hostnames Mathpix documents as EU deployments (the older name is still in its docs).
EU_HOSTS = frozenset({"eu.api.mathpix.com", "eu-central-1.api.mathpix.com"})


@dataclass(frozen=True)
class Upstream:
    """Where the service mints tokens: a base URL, its region, and whether it is EU."""

    base_url: str
    region: str
    is_eu: bool
    app_id: str | None = field(default=None, repr=False)
    app_key: str = field(default="", repr=False)

    def __repr__(self) -> str:  # never the key
        return f"Upstream(base_url={self.base_url!r}, region={self.region!r}, is_eu={self.is_eu})"


def resolve_upstream(
    *,
    app_id: str | None,
    app_key: str | None,
    region: str | None,
    base_url: str | None,
    region_urls: Mapping[str, str] | None,
    eu_only: bool | None,
    environ: Mapping[str, str],
) -> Upstream:
    """Argument -> environment -> default, then the EU-only check.

    ``region_urls`` overrides a region's URL (tests point it at a LocalServer); a URL reached
    that way counts as that region. A ``base_url`` (or ``MATHPIX_URL``) counts as EU only if its
    host is one of Mathpix's EU hosts. ``eu_only`` defaults to True when the region is "eu".
    """
    app_id = app_id if app_id is not None else environ.get("MATHPIX_APP_ID") or None
    app_key = app_key if app_key is not None else environ.get("MATHPIX_APP_KEY") or None
    if not app_key:
        raise ConfigurationError(
            "the token service needs the Mathpix key: set MATHPIX_APP_KEY (and MATHPIX_APP_ID) "
            "in the service's environment"
        )
    name = normalize_region(region or environ.get("MATHPIX_REGION") or "global")
    urls = dict(REGION_URLS)
    for key, value in (region_urls or {}).items():
        urls[normalize_region(key)] = value
    explicit = base_url if base_url is not None else environ.get("MATHPIX_URL") or None
    if explicit is not None:
        url = explicit.rstrip("/")
        is_eu = (urlsplit(url).hostname or "").lower() in EU_HOSTS
        source = "base_url" if base_url is not None else "MATHPIX_URL"
    else:
        url = urls[name].rstrip("/")
        is_eu = name == "eu"
        source = f"region {name!r}"
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the upstream URL from {source} must be http(s), got {url!r}")
    if eu_only is None:
        eu_only = name == "eu"
    if eu_only and not is_eu:
        raise ConfigurationError(
            f"EU-only mode refuses to start: the upstream {url!r} (from {source}) is not the "
            "Mathpix EU deployment; use region 'eu' (https://eu.api.mathpix.com) and unset "
            "MATHPIX_URL, or drop EU-only mode"
        )
    return Upstream(base_url=url, region=name, is_eu=is_eu, app_id=app_id, app_key=app_key)


class UpstreamError(Exception):
    """Minting failed upstream. ``status`` is what the service answers; no secrets inside."""

    def __init__(self, message: str, *, status: int = 502, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class MintedToken:
    app_token: str = field(repr=False)
    expires_at_ms: int

    def __repr__(self) -> str:
        return f"MintedToken(app_token='token_…', expires_at_ms={self.expires_at_ms})"


async def mint_app_token(http: httpx.AsyncClient, upstream: Upstream, expires: int) -> MintedToken:
    """``POST {base}/v3/app-tokens`` with the key; returns the token and its expiry (epoch ms)."""
    headers = {"app_key": upstream.app_key, "Content-Type": "application/json"}
    if upstream.app_id:
        headers["app_id"] = upstream.app_id
    try:
        response = await http.post(
            f"{upstream.base_url}/v3/app-tokens", headers=headers, json={"expires": expires}
        )
    except httpx.TimeoutException:
        raise UpstreamError("Mathpix did not answer in time", status=504) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach Mathpix ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    error_id = None
    if isinstance(body, dict) and isinstance(body.get("error_info"), dict):
        error_id = str(body["error_info"].get("id", "")) or None
    if response.status_code == 429:
        hinted = parse_retry_after(response.headers.get("Retry-After"))
        wait = 30.0 if hinted is None else hinted
        raise UpstreamError("Mathpix rate-limited the token service", status=503, retry_after=wait)
    if response.status_code in (401, 403):
        raise UpstreamError(
            f"Mathpix refused the service's key ({error_id or response.status_code}); "
            "the operator must check MATHPIX_APP_KEY"
        )
    if response.status_code != 200 or error_id or not isinstance(body, dict):
        raise UpstreamError(
            f"Mathpix could not issue a token (HTTP {response.status_code}, {error_id or 'no id'})"
        )
    token = body.get("app_token")
    expires_at = _expires_at_ms(body.get("app_token_expires_at"))
    if not isinstance(token, str) or not token or expires_at is None:
        raise UpstreamError("Mathpix answered without an app token")
    return MintedToken(app_token=token, expires_at_ms=expires_at)


def _expires_at_ms(value: object) -> int | None:
    """Epoch milliseconds from a number or numeric string (values below 1e12 are seconds)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return int(number if number > 1e12 else number * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)
