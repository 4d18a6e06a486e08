"""The proxy's upstream connection pool: several small httpcore pools instead of one large one.

Why: httpcore (1.0.x) re-examines its whole pool every time a request joins or a response is
closed, and part of that pass is quadratic in the number of connections (for each connection
it lists every connection again). With one pool of 256 connections and 200 callers in
flight, that bookkeeping took three quarters of the service's CPU and throughput fell to an
eighth of the upstream's (the bench in ``bench/proxy.py``).

:class:`ShardedTransport` keeps the same total of connections but splits them over pools of
at most :data:`SHARD_SIZE`, and sends each request to the pool with the fewest requests in
flight (a request counts until its response is closed), so the pass stays small and no pool
queues while another has room.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx

SHARD_SIZE = 8


class _Counted(httpx.AsyncByteStream):
    """A response body that tells its shard once it is closed (or was never read)."""

    def __init__(self, stream: httpx.AsyncByteStream, done: _Shard) -> None:
        self._stream = stream
        self._done: _Shard | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()

    def _release(self) -> None:
        if self._done is not None:
            self._done.in_flight -= 1
            self._done = None

    def __del__(self) -> None:  # a response dropped unclosed must not count forever
        self._release()


class _Shard:
    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.in_flight = 0


class ShardedTransport(httpx.AsyncBaseTransport):
    """``max_connections`` upstream connections in pools of at most ``SHARD_SIZE``."""

    def __init__(self, *, max_connections: int, shard_size: int = SHARD_SIZE) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        count = math.ceil(max_connections / shard_size)
        per = math.ceil(max_connections / count)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        tls = httpx.create_ssl_context()  # one for all shards: each costs a CA-store load
        self.shards = [
            _Shard(httpx.AsyncHTTPTransport(limits=limits, verify=tls)) for _ in range(count)
        ]

    def __repr__(self) -> str:
        return f"ShardedTransport(shards={len(self.shards)})"

    @property
    def in_flight(self) -> int:
        """Requests sent whose responses are not closed yet (all shards)."""
        return sum(s.in_flight for s in self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(self.shards, key=lambda s: s.in_flight)
        shard.in_flight += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.in_flight -= 1
            raise
        if not isinstance(response.stream, httpx.AsyncByteStream):  # not from httpx itself
            shard.in_flight -= 1
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, shard),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.transport.aclose()
