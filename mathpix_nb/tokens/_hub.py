"""JupyterHub mode: a caller proves who they are with their own hub API token.

Inside a JupyterHub single-user server the environment has ``JUPYTERHUB_API_TOKEN``; the
notebook sends it to the token service, which asks the hub ``GET {hub_api_url}/user`` with
``Authorization: token <tok>``. The hub answers with the token owner's user model (200) or
refuses (401/403). Successful answers are cached briefly under the token's digest so a class
of forty notebooks refreshing tokens does not hammer the hub.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass

import httpx

logger = logging.getLogger("mathpix_nb.tokens")


class HubUnavailable(Exception):
    """The hub could not be asked (connection error, timeout or a 5xx)."""


@dataclass(frozen=True)
class HubUser:
    name: str
    groups: frozenset[str]


class HubAuthenticator:
    """Checks hub API tokens against ``{hub_api_url}/user``; optional user/group allow-lists."""

    def __init__(
        self,
        hub_api_url: str,
        *,
        allowed_users: Collection[str] | None = None,
        allowed_groups: Collection[str] | None = None,
        cache_seconds: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        if not hub_api_url.startswith(("http://", "https://")):
            raise ValueError(
                f"hub_api_url must be an http(s) URL such as http://127.0.0.1:8081/hub/api, "
                f"got {hub_api_url!r}"
            )
        self.hub_api_url = hub_api_url.rstrip("/")
        self.allowed_users = frozenset(allowed_users or ())
        self.allowed_groups = frozenset(allowed_groups or ())
        self.cache_seconds = cache_seconds
        self._timeout = timeout
        self._cache: dict[str, tuple[float, HubUser]] = {}
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"HubAuthenticator(hub_api_url={self.hub_api_url!r})"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def identify(self, hub_token: str) -> HubUser | None:
        """The hub user owning ``hub_token`` if allowed here; None if the hub says no."""
        key = hashlib.sha256(hub_token.encode("utf-8")).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self._client().get(
                f"{self.hub_api_url}/user", headers={"Authorization": f"token {hub_token}"}
            )
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"{type(exc).__name__} talking to {self.hub_api_url}") from None
        if response.status_code in (401, 403, 404):
            return None
        if response.status_code != 200:
            raise HubUnavailable(f"hub answered HTTP {response.status_code}")
        try:
            model = response.json()
            name = model["name"]
            groups = frozenset(model.get("groups") or ())
        except (ValueError, KeyError, TypeError):
            raise HubUnavailable("hub answered 200 without a user model") from None
        if not isinstance(name, str) or not name or model.get("kind", "user") != "user":
            # Service tokens identify services, not people: they do not get Mathpix tokens.
            return None
        user = HubUser(name=name, groups=groups)
        if not self._allowed(user):
            logger.info("hub user %s is not in the allowed users/groups", name)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self.cache_seconds, user)
        return user

    def _allowed(self, user: HubUser) -> bool:
        if not self.allowed_users and not self.allowed_groups:
            return True
        return user.name in self.allowed_users or bool(user.groups & self.allowed_groups)
