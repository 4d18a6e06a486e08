"""Serve ASGI apps with uvicorn in a background thread: the one runner of the package.

The local server, the team service and the tests all serve this way. Why one runner:

* sockets are bound *before* the thread starts (port 0 = a free port the kernel picks and
  we keep), so there is no race between choosing a port and listening on it;
* accepted sockets get ``TCP_NODELAY``: asyncio sets it only when the listening socket's
  ``proto`` says TCP, and without it every keep-alive reply waits ~40 ms (Nagle + delayed
  ACK) because uvicorn writes headers and body separately;
* several apps (one per region) share one thread and one event loop.

uvicorn is imported only when a server starts, so the core stays importable without the
``[server]`` extra.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal

__all__ = ["ThreadedServer", "bind_socket", "serve_forever"]


def bind_socket(host: str = "127.0.0.1", port: int = 0, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port), ready for uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class ThreadedServer:
    """``with ThreadedServer(app) as s: s.url``: uvicorn in a daemon thread.

    Args:
        apps: one ASGI app, or several (each gets its own socket; ``urls`` in order).
        host: address to bind; port: the first app's port (0: free ports for all; a fixed
            port ``p`` gives app ``i`` port ``p + i``).
        lifespan: uvicorn's lifespan mode ("on" runs Starlette startup/shutdown hooks).
        on_shutdown: an async callable awaited in the server's loop after serving ends.
        keep_alive: seconds an idle keep-alive connection stays open.
    """

    def __init__(
        self,
        apps: Any | Sequence[Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        keep_alive: int = 30,
        name: str = "mathpix-nb-server",
    ) -> None:
        self._apps: list[Any] = list(apps) if isinstance(apps, list | tuple) else [apps]
        self.host = host
        self._port = port
        self._lifespan = lifespan
        self._on_shutdown = on_shutdown
        self._keep_alive = keep_alive
        self._name = name
        self._sockets: list[socket.socket] = []
        self._servers: list[Any] = []
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- addresses --------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        if not self._sockets:
            raise RuntimeError("the server is not started; use `with ThreadedServer(...)`")
        out = []
        for sock in self._sockets:
            host, port = sock.getsockname()[:2]
            out.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
        return out

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def app(self) -> Any:
        """The (first) ASGI app being served."""
        return self._apps[0]

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1]) if self._sockets else self._port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> ThreadedServer:
        """Bind, serve in a daemon thread, and return once every app accepts requests."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("the server is already started")
        self._error = None
        try:
            for i in range(len(self._apps)):
                port = self._port + i if self._port else 0
                try:
                    self._sockets.append(bind_socket(self.host, port))
                except OSError as exc:
                    raise OSError(f"cannot listen on {self.host}:{port}: {exc}") from exc
        except OSError:
            self._close_sockets()
            raise
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    http="h11",
                    lifespan=self._lifespan,
                    log_config=None,  # leave the host program's logging (pytest, a notebook)
                    log_level="warning",
                    access_log=False,
                    ws="none",
                    timeout_keep_alive=self._keep_alive,
                    backlog=2048,
                    timeout_graceful_shutdown=2,
                )
            )
            for app in self._apps
        ]
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {timeout:g} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(
                *(
                    server.serve(sockets=[sock])
                    for server, sock in zip(self._servers, self._sockets, strict=True)
                )
            )
        finally:
            if self._on_shutdown is not None:
                await self._on_shutdown()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the server's event loop (thread-safe)."""
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("the server is not running")
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Stop serving and release the ports (idempotent)."""
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close_sockets()
        self.loop = None

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def __enter__(self) -> ThreadedServer:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    proxy_headers: bool = False,
    forwarded_allow_ips: str | None = None,
    access_log: bool = True,
) -> None:
    """Serve ``app`` in the foreground until interrupted (the CLIs' production mode).

    Same socket set-up as :class:`ThreadedServer` (TCP_NODELAY), uvicorn's own signal
    handling and logging. ``access_log=False`` when paths may hold secrets (the team proxy's
    ``v3/app-tokens/{token}``; it writes its own audit log instead).
    """
    import uvicorn

    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        ws="none",
        access_log=access_log,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
