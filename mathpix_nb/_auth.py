"""Credentials: app keys, a fixed app token, or app tokens fetched and refreshed for you.

``Credentials`` is I/O-free: it hands out headers, says when a token must be (re)fetched
and builds the request that fetches one; the request flows in ``_protocol`` send it.

Token sources:

* ``app_token=``: a fixed token; used as is, cannot be refreshed.
* ``use_app_tokens=True``: minted from ``v3/app-tokens`` on the client's own base URL with
  ``app_key`` (so with region ``eu`` minting stays in the EU).
* ``token_url=``: the user's own token endpoint (the team service): ``POST`` with
  ``Authorization: Bearer <token_auth>`` (or the given headers) and ``{"expires": seconds}``,
  answering like ``v3/app-tokens``.

With ``proxy_url=`` there is no token at all: every request goes to the team proxy with
``proxy_auth`` (a bearer secret or headers) and the proxy adds the key, so everything keys can
do (async, PDFs, ocr-results) is allowed.

Fetched tokens are cached and refreshed ahead of expiry (10 % of their lifetime, at least 5 s,
at most half of it).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from ._clock import SYSTEM_CLOCK, Clock
from ._config import Settings, safe_url
from ._exceptions import AuthenticationError, NotAllowedError, TokenError, error_for
from ._models import AppToken

__all__ = ["Credentials"]

_USER_AGENT_HEADER = "user-agent"


class Credentials:
    """Which headers authenticate each request, and the app-token cache."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._token: AppToken | None = None
        self.minting = False
        if settings.proxy_url is not None:
            self.kind = "proxy"
        elif settings.app_token:
            self.kind = "fixed"
            self._token = AppToken(app_token=settings.app_token, expires_at=float("inf"))
        elif settings.token_url:
            self.kind = "url"
        elif settings.use_app_tokens:
            self.kind = "mathpix"
        else:
            self.kind = "keys"

    # -- modes -------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """'keys', 'proxy' or 'app_token'."""
        return self.kind if self.kind in ("keys", "proxy") else "app_token"

    @property
    def sends_tokens(self) -> bool:
        """True when requests authenticate with an app token (fixed, minted or fetched)."""
        return self.kind in ("fixed", "url", "mathpix")

    @property
    def can_refresh(self) -> bool:
        return self.kind in ("url", "mathpix")

    def key_headers(self, what: str) -> dict[str, str]:
        """``app_id``/``app_key`` headers, or NotAllowedError naming ``what`` needs them."""
        s = self.settings
        if self.kind == "proxy":
            return s.auth_headers(s.proxy_auth)
        if not s.has_keys:
            raise NotAllowedError(
                f"{what} cannot be done with an app token (Mathpix allows app tokens only for "
                "v3/text, v3/latex and v3/strokes, without async). Fix: create the client with "
                "app_id and app_key (server side) for this call."
            )
        return {"app_id": s.app_id or "", "app_key": s.app_key or ""}

    # -- token cache ---------------------------------------------------------------------
    def usable_token(self, now: float | None = None) -> AppToken | None:
        """The cached token if it is not within its refresh margin of expiry."""
        token = self._token
        if token is None:
            return None
        if self.kind == "fixed":
            return token
        now = self.clock.time() if now is None else now
        issued = token.issued_at if token.issued_at is not None else now
        lifetime = max(0.0, token.expires_at - issued)
        # refresh ahead: 10 % of the lifetime, at least 5 s, but never more than half of it
        margin = min(max(5.0, 0.1 * lifetime), 0.5 * lifetime)
        if token.expires_at - now <= margin:
            return None
        return token

    def unexpired_token(self, now: float | None = None, slack: float = 1.0) -> AppToken | None:
        """The cached token if it is still valid for ``slack`` seconds (refresh margin or not)."""
        token = self._token
        now = self.clock.time() if now is None else now
        if token is None or token.expires_at - now <= slack:
            return None
        return token

    def invalidate(self, token: AppToken | None) -> None:
        """Forget ``token`` after an expired-token answer (unless a newer one replaced it)."""
        with self._lock:
            if self.kind != "fixed" and self._token is token:
                self._token = None

    def store(self, token: AppToken) -> None:
        with self._lock:
            self._token = token

    # -- fetching ------------------------------------------------------------------------
    def mint_request(self, timeout: dict[str, Any], user_agent: str) -> httpx.Request:
        """The request that fetches a fresh token for this client."""
        s = self.settings
        body = {"expires": s.token_lifetime}
        if self.kind == "url":
            headers = s.auth_headers(s.token_auth)
            headers[_USER_AGENT_HEADER] = user_agent
            return httpx.Request(
                "POST",
                s.token_url or "",
                headers=headers,
                json=body,
                extensions={"timeout": timeout},
            )
        headers = self.key_headers("Minting app tokens")
        headers[_USER_AGENT_HEADER] = user_agent
        return httpx.Request(
            "POST",
            s.url("v3/app-tokens"),
            headers=headers,
            json=body,
            extensions={"timeout": timeout},
        )

    def accept(
        self, response: httpx.Response, *, issued_at: float | None = None, store: bool = True
    ) -> AppToken:
        """Parse a token answer (v3/app-tokens shape), cache it (unless ``store=False``: a
        token for someone else, e.g. a strokes session) and return it; raise on errors."""
        s = self.settings
        where = (
            f"token endpoint {safe_url(s.token_url)}"
            if self.kind == "url"
            else f"{s.base_url}/v3/app-tokens"
        )
        if response.status_code == 401 and self.kind == "url":
            raise AuthenticationError(
                f"The {where} refused the caller credential (HTTP 401). Fix: pass the right "
                "token_auth= (a bearer token string or a dict of headers).",
                status_code=401,
                error_id="token_endpoint_unauthorized",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            exc = error_for(
                response.status_code,
                body if body is not None else response.content,
                source=where,
                headers=response.headers,
                secrets=s.secrets,
            )
            raise exc
        try:
            token = AppToken.from_response(
                body, issued_at=self.clock.time() if issued_at is None else issued_at
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenError(
                f"The {where} answered without app_token/app_token_expires_at. Fix: it must "
                "answer like Mathpix v3/app-tokens.",
                status_code=response.status_code,
            ) from exc
        if store:
            self.store(token)
        return token
