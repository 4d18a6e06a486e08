"""The proxy's upstream pool: many callers in flight at once reach Mathpix at once (the pool
is split into small shards so its bookkeeping stays cheap, but no shard queues while another
has room), and a closed response frees its place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mathpix_nb.server import LocalServer
from mathpix_nb.tokens._pool import SHARD_SIZE, ShardedTransport

from .conftest import ALICE

pytestmark = pytest.mark.timeout(60)

LATENCY = 0.3
CALLERS = 3 * SHARD_SIZE  # more than one shard can carry


@pytest.fixture
def slow_upstream() -> Iterator[Any]:
    with LocalServer(engine="echo", latency_base=LATENCY) as server:
        yield server


async def _burst(client: httpx.AsyncClient, url: str, headers: dict[str, str], png: bytes) -> Any:
    async def one() -> int:
        async with client.stream(
            "POST", f"{url}/v3/text", headers=headers, files={"file": ("x.png", png, "image/png")}
        ) as answer:
            await answer.aread()
            return answer.status_code

    return await asyncio.gather(*(one() for _ in range(CALLERS)))


def test_shards_carry_every_request_at_once_and_free_closed_ones(slow_upstream, png_bytes):
    keys = {"app_id": slow_upstream.app_id, "app_key": slow_upstream.app_key}
    transport = ShardedTransport(max_connections=CALLERS)
    assert len(transport.shards) == 3

    async def main() -> list[int]:
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            return list(await _burst(client, slow_upstream.url, keys, png_bytes))

    start = time.monotonic()
    statuses = asyncio.run(main())
    elapsed = time.monotonic() - start
    assert statuses == [200] * CALLERS
    assert slow_upstream.stats()["peak_in_flight"] == CALLERS  # nobody queued for a shard
    assert elapsed < 8 * LATENCY
    assert transport.in_flight == 0  # every closed response gave its place back


def test_proxy_forwards_many_callers_concurrently(start_service, slow_upstream, png_bytes):
    service = start_service(
        base_url=slow_upstream.url,
        region_urls=None,
        app_id=slow_upstream.app_id,
        app_key=slow_upstream.app_key,
        proxy=True,
        proxy_rate_limit_per_minute=100_000,
    )

    async def main() -> list[int]:
        limits = httpx.Limits(max_connections=CALLERS)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            bearer = {"Authorization": f"Bearer {ALICE}"}
            return list(await _burst(client, service.url, bearer, png_bytes))

    statuses = asyncio.run(main())
    assert statuses == [200] * CALLERS
    assert slow_upstream.stats()["peak_in_flight"] == CALLERS
