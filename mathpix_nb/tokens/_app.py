"""The token service as an ASGI app: ``POST /token`` hands authenticated callers app tokens.

Protocol (docs/architecture.md, "Token endpoint (token_url) protocol"): ``POST {prefix}/token``
with ``Authorization: Bearer <secret>`` (or ``token <hub token>`` in JupyterHub mode) and an
optional JSON body ``{"expires": seconds}``; 200 answers have the shape of Mathpix
``v3/app-tokens``. Errors use Mathpix's envelope (``error`` + ``error_info.id``) so a client
maps them like API errors: 401 ``http_unauthorized``, 429 ``http_max_requests`` with
``Retry-After``, 400 for a bad body, 502/503/504 when Mathpix itself failed.
``GET {prefix}/health`` answers ``{"status": "ok"}``; every other path is 404, every other
method 405.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._exceptions import ConfigurationError
from ._callers import Callers, load_callers_env, load_callers_file
from ._cors import CorsMiddleware
from ._hub import HubAuthenticator, HubUnavailable
from ._proxy import DEFAULT_GROUPS, MAX_IMAGE_BYTES, MAX_PDF_BYTES, Proxy
from ._proxy import MAX_BODY_BYTES as PROXY_MAX_BODY
from ._ratelimit import RateLimiter, retry_after_header
from ._store import ProxyStore, Quotas, token_digest
from ._upstream import Upstream, UpstreamError, mint_app_token, now_ms, resolve_upstream

logger = logging.getLogger("mathpix_nb.tokens")

MAX_BODY_BYTES = 4096
# Mathpix's own bounds for v3/app-tokens "expires" (seconds).
MATHPIX_MIN_EXPIRES = 30
MATHPIX_MAX_EXPIRES = 43_200
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Caller:
    """Who asked: ``name`` as logged, ``via`` "bearer" or "jupyterhub"."""

    name: str
    via: str


class TokenService:
    """State behind the app: callers, hub check, rate limiter, upstream and its HTTP client."""

    def __init__(
        self,
        *,
        callers: Callers,
        hub: HubAuthenticator | None,
        upstream: Upstream,
        max_expires: int,
        min_expires: int,
        limiter: RateLimiter,
        upstream_timeout: float,
    ) -> None:
        self.callers = callers
        self.hub = hub
        self.upstream = upstream
        self.max_expires = max_expires
        self.min_expires = min_expires
        self.limiter = limiter
        self._upstream_timeout = upstream_timeout
        self._http: httpx.AsyncClient | None = None
        self.issued = 0
        self.proxy: Proxy | None = None

    def __repr__(self) -> str:
        return (
            f"TokenService(upstream={self.upstream!r}, callers={self.callers!r}, "
            f"hub={self.hub!r}, max_expires={self.max_expires})"
        )

    def http(self) -> httpx.AsyncClient:
        # Created lazily: a mounted sub-app never sees lifespan events.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._upstream_timeout)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.proxy is not None:
            await self.proxy.aclose()
        if self.hub is not None:
            await self.hub.aclose()

    async def authenticate(self, request: Request) -> Caller | None:
        """The caller behind the Authorization header, or None (missing/wrong credential)."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("bearer", "token") or not credential:
            return None
        name = self.callers.identify(credential) if len(self.callers) else None
        if name is not None:
            return Caller(name=name, via="bearer")
        if self.hub is not None:
            user = await self.hub.identify(credential)  # may raise HubUnavailable
            if user is not None:
                return Caller(name=user.name, via="jupyterhub")
        return None

    def choose_expires(self, requested: int | None) -> int:
        """The configured lifetime, or a shorter one the caller asked for (never longer)."""
        if requested is None:
            return self.max_expires
        return max(self.min_expires, min(requested, self.max_expires))


def _error(status: int, error_id: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": message, "error_info": {"id": error_id, "message": message}}
    return JSONResponse(body, status_code=status, headers={**_NO_STORE, **headers})


def _client_host(request: Request) -> str:
    return request.client.host if request.client else "?"


async def _read_expires(request: Request) -> int | JSONResponse | None:
    """The optional ``expires`` from the body, or an error response naming the problem."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _error(413, "sys_request_too_large", f"body over {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "sys_request_too_large", f"body over {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "json_syntax", 'body must be JSON such as {"expires": 120}')
    if not isinstance(data, dict):
        return _error(400, "json_syntax", 'body must be a JSON object such as {"expires": 120}')
    value = data.get("expires")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        return _error(
            400,
            "opts_value_out_of_range",
            f"'expires' must be a positive number of seconds, got {json.dumps(value)[:40]}",
        )
    return int(value)


async def _issue(request: Request) -> Response:
    service: TokenService = request.app.state.token_service
    try:
        caller = await service.authenticate(request)
    except HubUnavailable as exc:
        logger.error("cannot verify a caller with JupyterHub: %s", exc)
        return _error(
            503,
            "sys_exception",
            "cannot verify the credential with JupyterHub now",
            **{"Retry-After": "5"},
        )
    if caller is None:
        has_header = "authorization" in request.headers
        logger.warning(
            "refused a token request from %s: %s credential",
            _client_host(request),
            "wrong" if has_header else "no",
        )
        how = "Authorization: Bearer <your token-service secret>"
        if service.hub is not None:
            how += " or Authorization: token <your JupyterHub API token (JUPYTERHUB_API_TOKEN)>"
        return _error(
            401,
            "http_unauthorized",
            f"Invalid credentials: send {how}",
            **{"WWW-Authenticate": 'Bearer realm="mathpix-token-service"'},
        )
    wait = service.limiter.acquire(caller.name)
    if wait > 0:
        logger.warning(
            "rate-limited caller=%s via=%s retry_after=%.1fs", caller.name, caller.via, wait
        )
        return _error(
            429,
            "http_max_requests",
            f"Too many token requests: at most {service.limiter.per_minute:g} a minute",
            **{"Retry-After": retry_after_header(wait)},
        )
    requested = await _read_expires(request)
    if isinstance(requested, JSONResponse):
        return requested
    expires = service.choose_expires(requested)
    try:
        minted = await mint_app_token(service.http(), service.upstream, expires)
    except UpstreamError as exc:
        logger.error("could not issue a token to caller=%s: %s", caller.name, exc)
        extra = {}
        if exc.retry_after is not None:
            extra["Retry-After"] = retry_after_header(exc.retry_after)
        return _error(exc.status, "sys_exception", str(exc), **extra)
    service.issued += 1
    if service.proxy is not None:  # so v3/app-tokens/{token} look-ups through the proxy work
        service.proxy.store.record(
            f"{caller.via}:{caller.name}", "token", token_digest(minted.app_token)
        )
    logger.info(
        "issued app token caller=%s via=%s expires_in=%ds expires_at_ms=%d region=%s",
        caller.name,
        caller.via,
        max(0, round((minted.expires_at_ms - now_ms()) / 1000)),
        minted.expires_at_ms,
        service.upstream.region,
    )
    return JSONResponse(
        {"app_token": minted.app_token, "app_token_expires_at": minted.expires_at_ms},
        headers=_NO_STORE,
    )


async def _health(request: Request) -> Response:
    service: TokenService = request.app.state.token_service
    return JSONResponse({"status": "ok", "region": service.upstream.region}, headers=_NO_STORE)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return _error(
            405,
            "http_method_not_allowed",
            f"method not allowed; use {allow or 'POST'}",
            **({"Allow": allow} if allow else {}),
        )
    if exc.status_code == 404:
        return _error(404, "http_not_found", "not found: this service only serves POST /token")
    return _error(exc.status_code, "http_error", str(exc.detail))


def create_app(
    *,
    callers: Callers | Mapping[str, str] | None = None,
    callers_file: str | os.PathLike[str] | None = None,
    callers_from_env: bool = True,
    hub_api_url: str | None = None,
    hub_allowed_users: Collection[str] | None = None,
    hub_allowed_groups: Collection[str] | None = None,
    app_id: str | None = None,
    app_key: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    region_urls: Mapping[str, str] | None = None,
    eu_only: bool | None = None,
    expires: int = 300,
    min_expires: int = MATHPIX_MIN_EXPIRES,
    rate_limit_per_minute: float = 30,
    rate_limit_burst: int | None = None,
    prefix: str = "",
    upstream_timeout: float = 10.0,
    proxy: bool = False,
    proxy_endpoints: Collection[str] = DEFAULT_GROUPS,
    proxy_rate_limit_per_minute: float = 600,
    proxy_rate_limit_burst: int | None = None,
    quotas: Quotas | None = None,
    state_db: str = ":memory:",
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_pdf_bytes: int = MAX_PDF_BYTES,
    max_body_bytes: int = PROXY_MAX_BODY,
    proxy_read_timeout: float = 120.0,
    cors_origins: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the token service (a Starlette app, mountable or run by uvicorn).

    The key comes from ``app_key``/``app_id`` or ``MATHPIX_APP_KEY``/``MATHPIX_APP_ID``.
    Callers come from ``callers`` ({name: secret or "sha256:<hex>"}), ``callers_file`` and
    ``MATHPIX_NB_TOKEN_CALLERS``; with ``hub_api_url`` a JupyterHub API token is accepted too.
    ``expires`` is the lifetime of every token (callers may ask for a shorter one down to
    ``min_expires``). ``eu_only`` (default: on when ``region="eu"``) refuses a non-EU upstream.
    With ``proxy=True`` the app also forwards ``/v3/...`` (and ``/v1/export``) to the upstream
    with the key (see ``_proxy``): ``proxy_endpoints`` are the endpoint groups allowed,
    ``proxy_rate_limit_per_minute`` / ``quotas`` the per-caller budgets, ``state_db`` the SQLite
    file of ownership and usage (":memory:" forgets them on restart), ``max_*_bytes`` the
    body limits. ``cors_origins`` lists the browser origins allowed (default none).
    Raises ConfigurationError, naming the setting to fix, when the service cannot run safely.
    """
    env = os.environ if environ is None else environ
    upstream = resolve_upstream(
        app_id=app_id,
        app_key=app_key,
        region=region,
        base_url=base_url,
        region_urls=region_urls,
        eu_only=eu_only,
        environ=env,
    )
    known = callers if isinstance(callers, Callers) else Callers.from_secrets(callers or {})
    if callers_file is not None:
        known = known.merged(load_callers_file(callers_file))
    if callers_from_env:
        known = known.merged(load_callers_env(env))
    hub = None
    if hub_api_url:
        try:
            hub = HubAuthenticator(
                hub_api_url, allowed_users=hub_allowed_users, allowed_groups=hub_allowed_groups
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    if not len(known) and hub is None:
        raise ConfigurationError(
            "the token service has no way to authenticate callers: give a callers file "
            "(--callers-file), set MATHPIX_NB_TOKEN_CALLERS, or use JupyterHub mode (--jupyterhub)"
        )
    _check_expires(expires, min_expires)
    if rate_limit_per_minute <= 0:
        raise ConfigurationError(
            f"rate_limit_per_minute must be positive, got {rate_limit_per_minute!r}"
        )
    service = TokenService(
        callers=known,
        hub=hub,
        upstream=upstream,
        max_expires=int(expires),
        min_expires=int(min_expires),
        limiter=RateLimiter(rate_limit_per_minute, rate_limit_burst),
        upstream_timeout=upstream_timeout,
    )
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    routes = [
        Route(f"{base}/token", _issue, methods=["POST"]),
        Route(f"{base}/health", _health, methods=["GET"]),
    ]
    if proxy:
        if proxy_rate_limit_per_minute <= 0:
            raise ConfigurationError(
                f"proxy_rate_limit_per_minute must be positive, got {proxy_rate_limit_per_minute!r}"
            )
        for name, value in (
            ("max_image_bytes", max_image_bytes),
            ("max_pdf_bytes", max_pdf_bytes),
            ("max_body_bytes", max_body_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(
                    f"{name} must be a positive number of bytes, got {value!r}"
                )
        try:
            store = ProxyStore(state_db)
        except Exception as exc:  # sqlite3.Error, OSError
            raise ConfigurationError(
                f"cannot open the proxy's state database {state_db!r} ({exc}); pass a writable "
                "path (--state-db)"
            ) from None
        service.proxy = Proxy(
            upstream=upstream,
            authenticate=service.authenticate,
            groups=proxy_endpoints,
            limiter=RateLimiter(proxy_rate_limit_per_minute, proxy_rate_limit_burst),
            quotas=quotas or Quotas(),
            store=store,
            max_image_bytes=max_image_bytes,
            max_pdf_bytes=max_pdf_bytes,
            max_body_bytes=max_body_bytes,
            read_timeout=proxy_read_timeout,
            prefix=base,
        )
        methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
        routes += [
            Route(f"{base}/v3/{{rest:path}}", service.proxy.handle, methods=methods),
            Route(f"{base}/v1/{{rest:path}}", service.proxy.handle, methods=methods),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "token service ready: upstream=%s region=%s callers=%d jupyterhub=%s max_expires=%ds "
            "proxy=%s",
            upstream.base_url,
            upstream.region,
            len(known),
            hub is not None,
            expires,
            "off" if service.proxy is None else ",".join(sorted(service.proxy.groups)),
        )
        if service.proxy is not None and state_db == ":memory:":
            logger.warning(
                "proxy state is in memory: who created which PDF and the quotas' counts are "
                "lost on restart; pass --state-db PATH to keep them"
            )
        try:
            yield
        finally:
            await service.aclose()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception},
        middleware=[Middleware(CorsMiddleware, origins=tuple(cors_origins))],
        lifespan=lifespan,
    )
    app.state.token_service = service
    return app


def _check_expires(expires: Any, min_expires: Any) -> None:
    for name, value in (("expires", expires), ("min_expires", min_expires)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigurationError(
                f"{name} must be a positive whole number of seconds, got {value!r}"
            )
    if expires > MATHPIX_MAX_EXPIRES:
        raise ConfigurationError(
            f"expires={expires} is over Mathpix's limit of {MATHPIX_MAX_EXPIRES} s (12 h); "
            "short lifetimes (minutes) are the point of app tokens"
        )
    if min_expires > expires:
        raise ConfigurationError(f"min_expires={min_expires} is larger than expires={expires}")
    if min_expires < MATHPIX_MIN_EXPIRES:
        logger.warning(
            "min_expires=%ds is under Mathpix's minimum of %ds: Mathpix itself refuses such "
            "tokens (only the local server issues them)",
            min_expires,
            MATHPIX_MIN_EXPIRES,
        )
