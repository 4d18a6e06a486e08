"""``ShardedAsyncTransport``: many small connection pools behind one httpx transport.

Why: httpcore re-checks every connection of a pool for each request it assigns, so one pool
of 32 connections costs ~16x more CPU per request than pools of 2. Bulk work with many
requests in flight sends each request to the least busy of several small pools. It is a
plain ``httpx.AsyncBaseTransport``, so it goes into an ``httpx.AsyncClient`` handed to
``AsyncMathpix(http_client=...)``: event hooks, observers and retries all still apply.

>>> import httpx
>>> client = httpx.AsyncClient(transport=ShardedAsyncTransport(connections=16))
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["ShardedAsyncTransport"]


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # built once: loading the CA bundle costs ~50 ms


class ShardedAsyncTransport(httpx.AsyncBaseTransport):
    """``connections`` connections split into pools of ``per_pool``; least busy pool first.

    ``verify`` / ``proxy`` are passed to each pool (``httpx.AsyncHTTPTransport``)."""

    def __init__(
        self,
        *,
        connections: int = 8,
        per_pool: int = 2,
        verify: ssl.SSLContext | str | bool | None = None,
        proxy: httpx.Proxy | str | None = None,
    ) -> None:
        if connections < 1 or per_pool < 1:
            raise ValueError("connections and per_pool must be >= 1")
        shards = -(-connections // per_pool)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        tls = _tls_context() if verify is None else verify
        self._pools = [
            httpx.AsyncHTTPTransport(verify=tls, limits=limits, proxy=proxy) for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:  # busy until the answer's headers are in (bodies here are small)
            return await self._pools[i].handle_async_request(request)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
