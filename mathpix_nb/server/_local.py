"""``LocalServer``: the Mathpix-compatible API on 127.0.0.1, in a background thread."""

from __future__ import annotations

import mimetypes
import secrets
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .._serving import ThreadedServer
from ._app import build_app
from ._config import ServerConfig
from ._core import ServerState
from ._engines import Engine, resolve_engine
from ._store import RequestRecord

KNOWN_REGIONS = ("global", "eu")
_REGION_ALIASES = {"eu-central-1": "eu", "us": "global", "us-east-1": "global"}


class LocalServer:
    """A local Mathpix v3 API: one port per region, separate result stores, real HTTP.

    Args:
        engine: ``"echo"`` (deterministic, fast), ``"offline"`` (rapidocr) or an ``Engine``.
        regions: region names; each gets its own port and its own result store
            (``ocr-results`` of ``eu`` never lists what ``global`` processed).
        app_id, app_key: the credentials the server accepts (default: ``local-app`` and a
            random key). Read them back from ``server.app_id`` / ``server.app_key``.
        host: address to bind (default ``127.0.0.1``).
        port: port of the first region (0 = any free port); further regions use ``port + i``
            when a fixed port is given, otherwise free ports.
        **options: every field of ``ServerConfig`` (latency, limits, faults, open-question
            switches; see the ``mathpix_nb.server`` docstring).

    Example::

        with LocalServer(engine="echo", regions=("global", "eu")) as server:
            httpx.post(server.url + "/v3/text", headers={"app_id": server.app_id,
                       "app_key": server.app_key}, json={"src": data_uri})
    """

    def __init__(
        self,
        engine: str | Engine = "echo",
        regions: Iterable[str] = ("global",),
        *,
        app_id: str | None = None,
        app_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        names = tuple(
            _REGION_ALIASES.get(r, r) for r in ([regions] if isinstance(regions, str) else regions)
        )
        if not names:
            raise ValueError("regions must name at least one region, e.g. ('global',)")
        if len(set(names)) != len(names):
            raise ValueError(f"regions must be distinct, got {names!r}")
        self._config = ServerConfig().replace(**options)
        self._app_id = app_id or "local-app"
        self._app_key = app_key or "local-key-" + secrets.token_hex(12)
        self._state = ServerState(
            engine=resolve_engine(engine),
            config=self._config,
            regions=names,
            app_id=self._app_id,
            app_key=self._app_key,
            group_id="local-group",
        )
        self._regions = names
        self._host = host
        self._port = port
        self._runner: ThreadedServer | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> LocalServer:
        """Bind the ports and serve in a daemon thread; returns once requests are accepted."""
        if self._runner is not None:
            raise RuntimeError("LocalServer is already started")
        runner = ThreadedServer(
            [build_app(self._state, region) for region in self._regions],
            host=self._host,
            port=self._port,
            lifespan="off",
            on_shutdown=self._state.aclose,
            name="mathpix-nb-local-server",
        )
        try:
            runner.start(timeout)
        except OSError as exc:
            raise OSError(f"LocalServer cannot listen for regions {self._regions}: {exc}") from exc
        except RuntimeError as exc:
            raise RuntimeError(f"LocalServer failed to start: {exc}") from exc
        self._runner = runner
        return self

    def stop(self) -> None:
        """Stop serving and release the ports (idempotent)."""
        if self._runner is not None:
            self._runner.stop()
            self._runner = None

    def __enter__(self) -> LocalServer:
        return self if self._runner is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:  # never shows the key
        urls = ", ".join(f"{r}={u}" for r, u in self.urls.items()) if self._runner else "stopped"
        return f"LocalServer(engine={self._state.engine.name!r}, {urls})"

    # ------------------------------------------------------------------ what tests read

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each region, e.g. ``{"global": "http://127.0.0.1:53211", ...}``."""
        if self._runner is None:
            raise RuntimeError("LocalServer is not started; use `with LocalServer(...) as s:`")
        return dict(zip(self._regions, self._runner.urls, strict=True))

    @property
    def url(self) -> str:
        """Base URL of the first region (no trailing slash)."""
        return self.urls[self._regions[0]]

    @property
    def regions(self) -> tuple[str, ...]:
        return self._regions

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def app_key(self) -> str:
        return self._app_key

    @property
    def engine(self) -> Engine:
        return self._state.engine

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def log(self) -> list[RequestRecord]:
        """A snapshot of the request log (oldest first)."""
        return self._state.log.snapshot()

    def stats(self) -> dict[str, int]:
        """Counters a test can check: OCR jobs in flight and their peak (the concurrency cap
        at work), images and PDF pages counted against the monthly quotas, and the bounded
        stores: request-log records kept / dropped (``max_log_records``), OCR results kept /
        evicted over all regions (``max_stored_results``, oldest first)."""
        state = self._state
        stores = state.stores.values()
        return {
            "in_flight": state.in_flight,
            "peak_in_flight": state.peak_in_flight,
            "images": state.usage.images,
            "pages": state.usage.pages,
            "log_records": len(state.log.snapshot()),
            "log_dropped": state.log.dropped,
            "results_stored": sum(len(s.results) for s in stores),
            "results_evicted": sum(s.results.evicted for s in stores),
        }

    def clear_log(self) -> None:
        self._state.log.clear()

    def configure(self, **options: Any) -> ServerConfig:
        """Change latency, limits, faults or switches while running; returns the new config."""
        with self._lock:
            self._config = self._config.replace(**options)
            self._call_in_loop(self._state.set_config, self._config)
            return self._config

    def reset_limits(self) -> None:
        """Forget the per-minute window and the monthly usage counters."""
        from ._limits import MinuteWindow, Usage

        def reset() -> None:
            self._state.window = MinuteWindow()
            self._state.usage = Usage()

        self._call_in_loop(reset)

    def host_file(
        self,
        data: bytes,
        name: str = "file.bin",
        content_type: str | None = None,
        region: str | None = None,
    ) -> str:
        """Serve ``data`` at a URL of this server (no auth), e.g. for ``src`` / PDF ``url``."""
        ctype = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        key = f"{secrets.token_hex(4)}-{name}"
        self._call_in_loop(self._state.files.__setitem__, key, (data, ctype))
        return f"{self.urls[region or self._regions[0]]}/_local/files/{quote(key)}"

    def inbox_url(self, name: str = "default") -> str:
        """A URL that accepts POSTs (e.g. a batch ``callback.post``); read them with ``inbox``."""
        return f"{self.url}/_local/inbox/{quote(name)}"

    def inbox(self, name: str = "default") -> list[dict[str, Any]]:
        """What was POSTed to ``inbox_url(name)``: ``[{"json": ..., "headers": {...}}, ...]``."""
        return list(self._state.inbox.get(name, []))

    def _call_in_loop(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the server's loop (state is only touched there) and wait for it."""
        loop = self._runner.loop if self._runner is not None else None
        if loop is None or not loop.is_running():
            fn(*args)
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5)

    def credentials(self) -> Mapping[str, str]:
        """Headers that authenticate with this server's keys."""
        return {"app_id": self._app_id, "app_key": self._app_key}
