"""Client configuration: arguments, then environment, then defaults, resolved once.

``resolve_settings(...)`` returns a frozen ``Settings``. Environment variables:

* ``MATHPIX_APP_ID`` / ``MATHPIX_APP_KEY`` (also LangChain's ``MATHPIX_API_ID`` /
  ``MATHPIX_API_KEY``), ``MATHPIX_APP_TOKEN``, ``MATHPIX_TOKEN_URL``
* ``MATHPIX_PROXY_URL`` + ``MATHPIX_PROXY_AUTH``: a team proxy that adds the key itself
* ``MATHPIX_REGION`` (``global`` | ``eu``; ``eu-central-1`` is accepted for ``eu``)
* ``MATHPIX_URL`` (any base URL; wins over ``MATHPIX_REGION``)

One rule for the host, used by every surface (clients, token service, CLI): the ``base_url``
argument, then the ``region`` argument, then ``MATHPIX_URL``, then ``MATHPIX_REGION``, then
global (:func:`resolve_endpoint`). Credentials from the environment are used only when no
credential was passed; the first complete kind wins: keys, then a proxy, then an app token or
token URL.

Credentials are normalised once here (surrounding whitespace, e.g. a newline pasted from a
file, is dropped) and refused when they cannot be a header value, without ever echoing them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "REGION_URLS",
    "Settings",
    "normalize_region",
    "region_names",
    "resolve_endpoint",
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
    "Pass app_id= and app_key= (or app_token= / token_url= / proxy_url=), or set the environment "
    "variables MATHPIX_APP_ID and MATHPIX_APP_KEY (keys from https://console.mathpix.com), or "
    "MATHPIX_PROXY_URL and MATHPIX_PROXY_AUTH for your team's proxy. Without an "
    "account, run the local Mathpix-compatible server offline: `mathpix-nb serve` on the command "
    "line or `mathpix_nb.server.LocalServer(engine='offline')` in Python, and point the client "
    "at it with base_url=."
)


def normalize_region(region: str) -> str:
    """Canonical name of ``region`` ('eu-central-1' -> 'eu'); ConfigurationError if unknown."""
    if not isinstance(region, str):
        raise ConfigurationError(
            f"region must be a string such as 'global' or 'eu', got {type(region).__name__}"
        )
    key = region.strip().lower()
    if key not in _REGION_ALIASES:
        raise ConfigurationError(
            f"Unknown Mathpix region {region!r}. Use 'global' (api.mathpix.com) or 'eu' "
            "(eu.api.mathpix.com; 'eu-central-1' also works), or pass base_url= for any other host."
        )
    return _REGION_ALIASES[key]


def region_names() -> tuple[str, ...]:
    """Every name ``normalize_region`` accepts (canonical names and aliases)."""
    return tuple(_REGION_ALIASES)


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
    proxy_url: str | None = None
    proxy_auth: str | Mapping[str, str] | None = field(default=None, repr=False)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    max_retries: int = 4

    @property
    def has_keys(self) -> bool:
        """Keys, or a team proxy that adds them: everything the API offers is allowed."""
        return bool(self.app_id and self.app_key) or self.proxy_url is not None

    @property
    def auth_mode(self) -> str:
        """'keys', 'proxy' (a team proxy adds the key) or 'app_token' (fixed token, minted
        tokens or a token endpoint)."""
        if self.proxy_url is not None:
            return "proxy"
        if self.app_token or self.token_url or self.use_app_tokens:
            return "app_token"
        return "keys"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in messages."""
        values: list[str] = [s for s in (self.app_key, self.app_token) if s]
        for auth in (self.token_auth, self.proxy_auth):
            if isinstance(auth, str):
                values.append(auth)
            elif isinstance(auth, Mapping):
                values.extend(str(v) for v in auth.values())
        return tuple(values)

    def auth_headers(self, auth: str | Mapping[str, str] | None) -> dict[str, str]:
        """Headers for a bearer secret string or a dict of headers (token_auth, proxy_auth)."""
        if isinstance(auth, str):
            return {"authorization": f"Bearer {auth}"}
        if isinstance(auth, Mapping):
            return {str(k): str(v) for k, v in auth.items()}
        return {}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def __repr__(self) -> str:
        return (
            f"Settings(region={self.region!r}, base_url={self.base_url!r}, "
            f"auth_mode={self.auth_mode!r}, app_id={self.app_id!r}, "
            f"app_key={_mask(self.app_key)!r}, app_token={_mask(self.app_token)!r}, "
            f"token_url={safe_url(self.token_url)!r}, proxy_url={safe_url(self.proxy_url)!r}, "
            f"max_retries={self.max_retries})"
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


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value and value.strip():
            return value.strip()
    return None


def _named(region: str, urls: Mapping[str, str]) -> str:
    """A region name: one of ``region_urls`` as given, else a known region (or its alias)."""
    if not isinstance(region, str):
        raise ConfigurationError(
            f"region must be a string such as 'global' or 'eu', got {type(region).__name__} "
            f"{region!r:.40}"
        )
    return region if region in urls else normalize_region(region)


def _region_for_url(url: str, urls: Mapping[str, str]) -> str:
    for name, region_url in urls.items():
        if url.rstrip("/") == region_url.rstrip("/"):
            return name
    return _HOST_REGIONS.get(urlsplit(url).hostname or "", "custom")


def _check_url(name: str, url: Any) -> str:
    if not isinstance(url, str):
        raise ConfigurationError(f"{name} must be a URL string, got {type(url).__name__}")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL with a host, got {safe_url(url)!r}"
        )
    return str(url)


def resolve_endpoint(
    *,
    region: str | None = None,
    base_url: str | None = None,
    region_urls: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``(base_url, region)`` by the one host rule (see the module docstring).

    >>> resolve_endpoint(region="eu-central-1", environ={})
    ('https://eu.api.mathpix.com', 'eu')
    """
    env = os.environ if environ is None else environ
    urls = dict(REGION_URLS)
    for name, url in (region_urls or {}).items():
        key = normalize_region(name) if name.strip().lower() in _REGION_ALIASES else name
        urls[key] = _check_url(f"region_urls[{name!r}]", url)
    if base_url is not None and not str(base_url).strip():
        raise ConfigurationError(
            "base_url is empty. Fix: pass a URL such as https://api.mathpix.com"
        )
    if region is not None and not isinstance(region, str):
        _named(region, urls)  # raises the typed message
    if base_url:
        resolved_url = _check_url("base_url", base_url)
        resolved_region = _named(region, urls) if region else _region_for_url(resolved_url, urls)
    elif region:
        resolved_region = _named(region, urls)
        resolved_url = urls[resolved_region]
    elif _env(env, "MATHPIX_URL"):
        resolved_url = _check_url("MATHPIX_URL", _env(env, "MATHPIX_URL"))
        env_region = _env(env, "MATHPIX_REGION")
        resolved_region = (
            normalize_region(env_region) if env_region else _region_for_url(resolved_url, urls)
        )
    else:
        resolved_region = normalize_region(_env(env, "MATHPIX_REGION") or "global")
        resolved_url = urls[resolved_region]
    return resolved_url.rstrip("/"), resolved_region


def _credential(
    name: str, value: Any, *, env_name: str | None = None, spaces: bool = False
) -> str | None:
    """A credential without surrounding whitespace; refused (never echoed) if it cannot be
    sent as an HTTP header value."""
    if value is None:
        return None
    where = f"{name} (env {env_name})" if env_name else name
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a string, got {type(value).__name__}.")
    value = value.strip()
    if not value:
        return None
    for i, ch in enumerate(value):
        if ord(ch) > 126 or ord(ch) < 32 or (ch == " " and not spaces):
            kind = "a non-ASCII character" if ord(ch) > 126 else "a space or control character"
            raise ConfigurationError(
                f"{where} contains {kind} at position {i + 1} of {len(value)}, so it cannot be "
                "the real value (it was probably pasted with extra text). Fix: copy it again "
                "from https://console.mathpix.com (or from whoever issued it)."
            )
    return str(value)


def _auth_value(name: str, value: Any) -> str | Mapping[str, str] | None:
    if value is None or isinstance(value, str):
        return _credential(name, value)
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                raise ConfigurationError(f"{name} as a dict must map header names to strings.")
            out[key] = _credential(f"{name}[{key!r}]", item, spaces=True) or ""
        return out
    raise ConfigurationError(
        f"{name} must be a bearer secret string or a dict of headers, got {type(value).__name__}."
    )


def resolve_settings(
    app_id: str | None = None,
    app_key: str | None = None,
    *,
    app_token: str | None = None,
    token_url: str | None = None,
    token_auth: str | Mapping[str, str] | None = None,
    use_app_tokens: bool = False,
    token_lifetime: int = 300,
    proxy_url: str | None = None,
    proxy_auth: str | Mapping[str, str] | None = None,
    region: str | None = None,
    base_url: str | None = None,
    region_urls: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout | None = None,
    limits: httpx.Limits | None = None,
    max_retries: int = 4,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve arguments, then environment, then defaults into ``Settings``.

    Host: see :func:`resolve_endpoint`. With ``proxy_url`` every request goes to the proxy
    (region names the upstream it forwards to, for the record). Missing or malformed
    credentials raise ``ConfigurationError``.
    """
    env = os.environ if environ is None else environ
    app_id = _credential("app_id", app_id)
    app_key = _credential("app_key", app_key)
    app_token = _credential("app_token", app_token)
    token_auth = _auth_value("token_auth", token_auth)
    proxy_auth = _auth_value("proxy_auth", proxy_auth)
    if token_url is not None:
        token_url = _check_url("token_url", token_url)
    if proxy_url is not None:
        proxy_url = _check_url("proxy_url", proxy_url).rstrip("/")

    explicit = bool(app_id or app_key or app_token or token_url or proxy_url)
    if not explicit:
        app_id = _credential(
            "app_id", _env(env, "MATHPIX_APP_ID", "MATHPIX_API_ID"), env_name="MATHPIX_APP_ID"
        )
        app_key = _credential(
            "app_key", _env(env, "MATHPIX_APP_KEY", "MATHPIX_API_KEY"), env_name="MATHPIX_APP_KEY"
        )
        if not (app_id or app_key):
            env_proxy = _env(env, "MATHPIX_PROXY_URL")
            if env_proxy:
                proxy_url = _check_url("MATHPIX_PROXY_URL", env_proxy).rstrip("/")
                if proxy_auth is None:
                    proxy_auth = _credential(
                        "proxy_auth", _env(env, "MATHPIX_PROXY_AUTH"), env_name="MATHPIX_PROXY_AUTH"
                    )
            else:
                app_token = _credential(
                    "app_token", _env(env, "MATHPIX_APP_TOKEN"), env_name="MATHPIX_APP_TOKEN"
                )
                env_url = _env(env, "MATHPIX_TOKEN_URL")
                token_url = _check_url("MATHPIX_TOKEN_URL", env_url) if env_url else None
                if token_url and token_auth is None:
                    token_auth = _credential(
                        "token_auth", _env(env, "MATHPIX_TOKEN_AUTH"), env_name="MATHPIX_TOKEN_AUTH"
                    )
    elif proxy_url is None:
        # keys given in part (or beside a token): complete them from the environment
        app_id = app_id or _credential(
            "app_id", _env(env, "MATHPIX_APP_ID", "MATHPIX_API_ID"), env_name="MATHPIX_APP_ID"
        )
        app_key = app_key or _credential(
            "app_key", _env(env, "MATHPIX_APP_KEY", "MATHPIX_API_KEY"), env_name="MATHPIX_APP_KEY"
        )

    resolved_url, resolved_region = resolve_endpoint(
        region=region, base_url=base_url, region_urls=region_urls, environ=env
    )
    if proxy_url is not None:
        if app_token or token_url or use_app_tokens:
            raise ConfigurationError(
                "proxy_url sends every request through your team's proxy, which adds the key "
                "itself: do not also pass app_token=, token_url= or use_app_tokens=True."
            )
        resolved_url = proxy_url
    if sum(bool(x) for x in (app_token, token_url)) > 1:
        raise ConfigurationError(
            "Pass either app_token= (a fixed token) or token_url= (fetch tokens), not both."
        )
    if use_app_tokens and not (app_id and app_key):
        raise ConfigurationError(
            "use_app_tokens=True mints tokens with your keys, so app_id and app_key are needed. "
            + _CREDENTIALS_HELP
        )
    if not (app_token or token_url or proxy_url):
        if not app_id and not app_key:
            nothing = ConfigurationError("No Mathpix credentials found. " + _CREDENTIALS_HELP)
            nothing.no_credentials = True
            raise nothing
        if not app_id or not app_key:
            missing = "app_id (MATHPIX_APP_ID)" if not app_id else "app_key (MATHPIX_APP_KEY)"
            raise ConfigurationError(
                f"Mathpix credentials incomplete: {missing} is missing. " + _CREDENTIALS_HELP
            )
    if (
        isinstance(token_lifetime, bool)
        or not isinstance(token_lifetime, int)
        or token_lifetime < 1
    ):
        raise ConfigurationError(
            f"token_lifetime must be positive whole seconds, got {token_lifetime!r}"
        )
    resolved_timeout = _timeout(timeout)
    if limits is not None and not isinstance(limits, httpx.Limits):
        raise ConfigurationError(f"limits must be an httpx.Limits, got {type(limits).__name__}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    return Settings(
        base_url=resolved_url,
        region=resolved_region,
        app_id=app_id,
        app_key=app_key,
        app_token=app_token,
        token_url=token_url,
        token_auth=token_auth,
        use_app_tokens=bool(use_app_tokens),
        token_lifetime=int(token_lifetime),
        proxy_url=proxy_url,
        proxy_auth=proxy_auth,
        timeout=resolved_timeout,
        limits=limits or DEFAULT_LIMITS,
        max_retries=int(max_retries),
    )


def _timeout(timeout: Any) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(
            f"timeout must be seconds (a number) or an httpx.Timeout, got "
            f"{type(timeout).__name__} {timeout!r:.40}"
        )
    seconds = float(timeout)
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(
            f"timeout must be a positive, finite number of seconds, got {timeout!r}"
        )
    return httpx.Timeout(seconds, connect=min(5.0, seconds))
