"""``LocalServer``: the Mathpix-compatible API on 127.0.0.1, in a background thread."""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import uvicorn

from ._app import ServerState, build_app
from ._config import ServerConfig
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
        self._sockets: dict[str, socket.socket] = {}
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> LocalServer:
        """Bind the ports and serve in a daemon thread; returns once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("LocalServer is already started")
        self._servers, self._error = [], None
        for i, region in enumerate(self._regions):
            # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
            # proto says TCP; without it every keep-alive response waits ~40 ms (Nagle +
            # delayed ACK) because uvicorn writes headers and body separately.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.bind((self._host, self._port + i if self._port else 0))
            except OSError as exc:
                sock.close()
                self._close_sockets()
                raise OSError(
                    f"cannot listen on {self._host}:{self._port + i} for region {region!r}: {exc}"
                ) from exc
            sock.listen(2048)
            sock.setblocking(False)
            self._sockets[region] = sock
        for region in self._regions:
            config = uvicorn.Config(
                build_app(self._state, region),
                http="h11",
                lifespan="off",
                log_level="warning",
                access_log=False,
                ws="none",
                timeout_keep_alive=30,
                backlog=2048,
                timeout_graceful_shutdown=2,
            )
            self._servers.append(uvicorn.Server(config))
        self._thread = threading.Thread(
            target=self._run, name="mathpix-nb-local-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"LocalServer failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("LocalServer did not start within the timeout")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(
                *(
                    server.serve(sockets=[self._sockets[region]])
                    for server, region in zip(self._servers, self._regions, strict=True)
                )
            )
        finally:
            await self._state.aclose()

    def stop(self) -> None:
        """Stop serving and release the ports (idempotent)."""
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets = {}

    def __enter__(self) -> LocalServer:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:  # never shows the key
        urls = ", ".join(f"{r}={u}" for r, u in self.urls.items()) if self._sockets else "stopped"
        return f"LocalServer(engine={self._state.engine.name!r}, {urls})"

    # ------------------------------------------------------------------ what tests read

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each region, e.g. ``{"global": "http://127.0.0.1:53211", ...}``."""
        if not self._sockets:
            raise RuntimeError("LocalServer is not started; use `with LocalServer(...) as s:`")
        return {
            region: "http://{}:{}".format(*sock.getsockname()[:2])
            for region, sock in self._sockets.items()
        }

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
        at work), images and PDF pages counted against the monthly quotas."""
        state = self._state
        return {
            "in_flight": state.in_flight,
            "peak_in_flight": state.peak_in_flight,
            "images": state.usage.images,
            "pages": state.usage.pages,
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
        loop = self._loop
        if loop is None or self._thread is None or not loop.is_running():
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
