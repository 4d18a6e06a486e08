"""Client configuration: arguments, then environment, then defaults, resolved once.

``resolve_settings(...)`` returns a frozen ``Settings``. Environment variables:

* ``MATHPIX_APP_ID`` / ``MATHPIX_APP_KEY`` (also LangChain's ``MATHPIX_API_ID`` /
  ``MATHPIX_API_KEY``), ``MATHPIX_APP_TOKEN``, ``MATHPIX_TOKEN_URL``
* ``MATHPIX_REGION`` (``global`` | ``eu``; ``eu-central-1`` is accepted for ``eu``)
* ``MATHPIX_URL`` (any base URL; wins over the region)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "REGION_URLS",
    "Settings",
    "normalize_region",
    "resolve_settings",
]

REGION_URLS: dict[str, str] = {
    "global": "https://api.mathpix.com",
    "eu": "https://eu.api.mathpix.com",
}
_REGION_ALIASES = {
    "global": "global",
    "us": "global",
    "default": "global",
    "eu": "eu",
    "eu-central-1": "eu",
    "europe": "eu",
}
# Hosts that belong to a region even when given as a base URL.
_HOST_REGIONS = {
    "api.mathpix.com": "global",
    "eu.api.mathpix.com": "eu",
    "eu-central-1.api.mathpix.com": "eu",
}

# Connect fast or fail; OCR of a large image can take a while to answer.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0, pool=30.0)
# Bounded pool: enough for bulk concurrency, small enough to be polite.
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16)

_CREDENTIALS_HELP = (
    "Pass app_id= and app_key= (or app_token= / token_url=), or set the environment variables "
    "MATHPIX_APP_ID and MATHPIX_APP_KEY (keys from https://console.mathpix.com). Without an "
    "account, run the local Mathpix-compatible server offline: `mathpix-nb serve` on the command "
    "line or `mathpix_nb.server.LocalServer(engine='offline')` in Python, and point the client "
    "at it with base_url=."
)


def normalize_region(region: str) -> str:
    """Canonical name of ``region`` ('eu-central-1' -> 'eu'); ConfigurationError if unknown."""
    key = region.strip().lower()
    if key not in _REGION_ALIASES:
        raise ConfigurationError(
            f"Unknown Mathpix region {region!r}. Use 'global' (api.mathpix.com) or 'eu' "
            "(eu.api.mathpix.com; 'eu-central-1' also works), or pass base_url= for any other host."
        )
    return _REGION_ALIASES[key]


def _mask(secret: str | None) -> str | None:
    return None if secret is None else "***"


@dataclass(frozen=True)
class Settings:
    """Everything a client needs, resolved once; the repr never shows a key or token."""

    base_url: str
    region: str
    app_id: str | None = None
    app_key: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    token_url: str | None = None
    token_auth: str | Mapping[str, str] | None = field(default=None, repr=False)
    use_app_tokens: bool = False
    token_lifetime: int = 300
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    max_retries: int = 4

    @property
    def has_keys(self) -> bool:
        return bool(self.app_id and self.app_key)

    @property
    def auth_mode(self) -> str:
        """'keys' or 'app_token' (fixed token, minted tokens or a token endpoint)."""
        if self.app_token or self.token_url or self.use_app_tokens:
            return "app_token"
        return "keys"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in messages."""
        values: list[str] = [s for s in (self.app_key, self.app_token) if s]
        if isinstance(self.token_auth, str):
            values.append(self.token_auth)
        elif isinstance(self.token_auth, Mapping):
            values.extend(str(v) for v in self.token_auth.values())
        return tuple(values)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def __repr__(self) -> str:
        return (
            f"Settings(region={self.region!r}, base_url={self.base_url!r}, "
            f"auth_mode={self.auth_mode!r}, app_id={self.app_id!r}, "
            f"app_key={_mask(self.app_key)!r}, app_token={_mask(self.app_token)!r}, "
            f"token_url={safe_url(self.token_url)!r}, max_retries={self.max_retries})"
        )


def safe_url(url: str | None) -> str | None:
    """``url`` without query string, fragment or userinfo (they may carry secrets)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?")[0]


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value.strip()
    return None


def _named(region: str, urls: Mapping[str, str]) -> str:
    """A region name: one of ``region_urls`` as given, else a known region (or its alias)."""
    return region if region in urls else normalize_region(region)


def _region_for_url(url: str, urls: Mapping[str, str]) -> str:
    for name, region_url in urls.items():
        if url.rstrip("/") == region_url.rstrip("/"):
            return name
    return _HOST_REGIONS.get(urlsplit(url).hostname or "", "custom")


def resolve_settings(
    app_id: str | None = None,
    app_key: str | None = None,
    *,
    app_token: str | None = None,
    token_url: str | None = None,
    token_auth: str | Mapping[str, str] | None = None,
    use_app_tokens: bool = False,
    token_lifetime: int = 300,
    region: str | None = None,
    base_url: str | None = None,
    region_urls: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout | None = None,
    limits: httpx.Limits | None = None,
    max_retries: int = 4,
) -> Settings:
    """Resolve arguments, then environment, then defaults into ``Settings``.

    Precedence for the host: ``base_url`` argument, ``region`` argument, ``MATHPIX_URL``,
    ``MATHPIX_REGION``, then global. Missing credentials raise ``ConfigurationError``.
    """
    urls = dict(REGION_URLS)
    for name, url in (region_urls or {}).items():
        urls[normalize_region(name) if name.lower() in _REGION_ALIASES else name] = url

    if base_url:
        resolved_url = base_url
        resolved_region = _named(region, urls) if region else _region_for_url(base_url, urls)
    elif region:
        resolved_region = _named(region, urls)
        resolved_url = urls[resolved_region]
    elif _env("MATHPIX_URL"):
        resolved_url = _env("MATHPIX_URL") or ""
        env_region = _env("MATHPIX_REGION")
        resolved_region = (
            normalize_region(env_region) if env_region else _region_for_url(resolved_url, urls)
        )
    else:
        resolved_region = normalize_region(_env("MATHPIX_REGION") or "global")
        resolved_url = urls[resolved_region]
    if not resolved_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must start with http:// or https://, got {safe_url(resolved_url)!r}"
        )

    explicit_token = bool(app_token or token_url)
    app_id = app_id or _env("MATHPIX_APP_ID", "MATHPIX_API_ID")
    app_key = app_key or _env("MATHPIX_APP_KEY", "MATHPIX_API_KEY")
    if not explicit_token and not (app_id or app_key):
        app_token = _env("MATHPIX_APP_TOKEN")
        token_url = _env("MATHPIX_TOKEN_URL")

    if app_token and token_url:
        raise ConfigurationError(
            "Pass either app_token= (a fixed token) or token_url= (fetch tokens), not both."
        )
    if use_app_tokens and not (app_id and app_key):
        raise ConfigurationError(
            "use_app_tokens=True mints tokens with your keys, so app_id and app_key are needed. "
            + _CREDENTIALS_HELP
        )
    if not (app_token or token_url):
        if not app_id and not app_key:
            raise ConfigurationError("No Mathpix credentials found. " + _CREDENTIALS_HELP)
        if not app_id or not app_key:
            missing = "app_id (MATHPIX_APP_ID)" if not app_id else "app_key (MATHPIX_APP_KEY)"
            raise ConfigurationError(
                f"Mathpix credentials incomplete: {missing} is missing. " + _CREDENTIALS_HELP
            )
    if int(token_lifetime) < 1:
        raise ConfigurationError(f"token_lifetime must be positive seconds, got {token_lifetime}")
    if timeout is None:
        resolved_timeout = DEFAULT_TIMEOUT
    elif isinstance(timeout, httpx.Timeout):
        resolved_timeout = timeout
    else:
        resolved_timeout = httpx.Timeout(float(timeout), connect=min(5.0, float(timeout)))
    if max_retries < 0:
        raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
    return Settings(
        base_url=resolved_url.rstrip("/"),
        region=resolved_region,
        app_id=app_id,
        app_key=app_key,
        app_token=app_token,
        token_url=token_url,
        token_auth=token_auth,
        use_app_tokens=bool(use_app_tokens),
        token_lifetime=int(token_lifetime),
        timeout=resolved_timeout,
        limits=limits or DEFAULT_LIMITS,
        max_retries=int(max_retries),
    )
