"""Which Mathpix client the panel and the magic use, one per region.

Decision (documented in docs/jupyter.md): an explicit ``client`` always wins (a ``Mathpix``
or a ``{region: Mathpix}`` mapping). Without one, credentials from the environment make a
real client per region; with no credentials at all, one shared local server with the offline
engine is started (once per kernel) and the panel says so, so a new user gets an answer
instead of a configuration error.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["ClientPool"]

REGIONS = ("global", "eu")

_offline_lock = threading.Lock()
_offline_server: Any = None


def _shared_offline_server() -> Any:
    """One offline-engine LocalServer per kernel, stopped when the kernel exits."""
    global _offline_server
    with _offline_lock:
        if _offline_server is None:
            from .._exceptions import ConfigurationError

            try:
                from ..server import LocalServer

                server = LocalServer(engine="offline", regions=REGIONS)
                server.__enter__()
            except ImportError as exc:
                raise ConfigurationError(
                    "No Mathpix credentials were found and the offline engine is not "
                    f"installed ({exc.name or exc}). Set MATHPIX_APP_ID and MATHPIX_APP_KEY, "
                    "or install it with: pip install 'mathpix_nb[offline]'."
                ) from None
            atexit.register(server.__exit__, None, None, None)
            _offline_server = server
        return _offline_server


class ClientPool:
    """Clients by region, plus a plain-words note on where OCR runs."""

    def __init__(self, client: Any = None, *, region: str | None = None) -> None:
        if region is not None and (client is None or not isinstance(client, Mapping)):
            from .._config import normalize_region

            region = normalize_region(region)  # the core's names and aliases (eu-central-1...)
        self._clients: dict[str, Any] = {}
        self._owned: list[Any] = []
        self._server: Any = None
        self.offline = False
        if client is None:
            self._mode = "auto"
        elif isinstance(client, Mapping):
            if not client:
                raise ValueError("client={} names no region; give a Mathpix client per region.")
            self._clients = dict(client)
            self._mode = "given"
        else:
            self._clients = {str(getattr(client, "region", None) or "global"): client}
            self._mode = "given"
        self.regions: list[str] = list(self._clients)
        if self._mode == "auto":
            self._resolve_auto(region)
        self.default_region = region if region in self.regions else self.regions[0]
        if region is not None and region not in self.regions:
            raise ValueError(
                f"region={region!r} is not available here; choose one of {self.regions}."
            )

    def _resolve_auto(self, region: str | None) -> None:
        from .. import Mathpix
        from .._exceptions import ConfigurationError

        try:
            # No region argument unless asked: it would override MATHPIX_URL.
            first = Mathpix(region=region) if region else Mathpix()
        except ConfigurationError as exc:
            if not exc.no_credentials:
                raise  # a malformed key is the user's to fix, never silently offline
            self.offline = True
            self._server = _shared_offline_server()
            self.regions = list(REGIONS)
            return
        self._clients[first.region] = first
        self._owned.append(first)
        # A custom MATHPIX_URL is one place; the Mathpix regions can be switched between.
        self.regions = list(REGIONS) if first.region in REGIONS else [first.region]
        if first.region in REGIONS:
            self.regions = [first.region, *(r for r in REGIONS if r != first.region)]

    def get(self, region: str | None = None) -> Any:
        """The client for ``region`` (the default region when None), made on first use."""
        region = region or self.default_region
        if region not in self.regions:
            raise ValueError(f"Unknown region {region!r}; choose one of {self.regions}.")
        if region not in self._clients:
            from .. import Mathpix

            if self.offline:
                server = self._server
                client = Mathpix(
                    app_id=server.app_id,
                    app_key=server.app_key,
                    region=region,
                    region_urls=dict(server.urls),
                )
            else:
                client = Mathpix(region=region)
            self._clients[region] = client
            self._owned.append(client)
        return self._clients[region]

    def redact(self, text: str) -> str:
        """``text`` with every secret of this pool's clients masked (the core's rule)."""
        for client in self._clients.values():
            redact = getattr(client, "redact", None)
            if callable(redact):
                text = str(redact(text))
        if self._server is not None:
            text = text.replace(str(self._server.app_key), "***")
        return text

    @property
    def note(self) -> str:
        """Where OCR runs, in plain words (never contains a key)."""
        if self.offline:
            return (
                "Offline engine: no Mathpix credentials were found, so images are read by a "
                "local OCR engine on this machine (rougher than Mathpix). Set MATHPIX_APP_ID "
                "and MATHPIX_APP_KEY, or pass client=Mathpix(...), to use Mathpix."
            )
        try:
            url = str(self.get().base_url)
        except Exception:
            url = "Mathpix"
        if "127.0.0.1" in url or "localhost" in url:
            return f"Local server at {url} (not Mathpix)."
        return f"Mathpix API at {url}."

    def close(self) -> None:
        """Close the clients this pool made (never a caller's, never the shared server)."""
        for client in self._owned:
            with contextlib.suppress(Exception):
                client.close()
        self._owned.clear()
