"""A busy Redis pool is not a Redis outage: the call falls back, the breaker stays shut."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from limits import parse
from redis.asyncio import BlockingConnectionPool, Redis

from app.core.cache import Cache
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisBreaker
from tests.conftest import LogReader

REDIS_URL = os.environ["REDIS_URL"]


def events(read: LogReader) -> list[object]:
    """The events logged since the last read (a read takes the lines it returns)."""
    return [line["event"] for line in read()]


@pytest.fixture
async def saturated() -> AsyncIterator[Redis]:
    """A client whose one pooled connection is taken, with a 50 ms pool wait."""
    pool = BlockingConnectionPool.from_url(REDIS_URL, max_connections=1, timeout=0.05)
    client = Redis.from_pool(pool)
    held = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        await pool.release(held)
        await client.aclose()


async def test_a_cache_read_on_a_busy_pool_falls_back_and_keeps_the_breaker_shut(
    saturated: Redis, log_lines: LogReader
) -> None:
    breaker = RedisBreaker(open_seconds=30)
    cache = Cache(saturated, ttl_seconds=60, breaker=breaker)
    loads = 0

    async def load() -> dict[str, object]:
        nonlocal loads
        loads += 1
        return {"value": 1}

    assert await cache.get_or_load("saturation-test", "read", load) == {"value": 1}
    assert loads == 1
    logged = events(log_lines)
    assert "cache_pool_saturated" in logged
    assert "cache_unavailable" not in logged
    assert cache.errors == 0
    assert breaker.available()


async def test_a_rate_limit_on_a_busy_pool_falls_back_and_keeps_the_breaker_shut(
    saturated: Redis, log_lines: LogReader
) -> None:
    breaker = RedisBreaker(open_seconds=30)
    limiter = RateLimiter(saturated, breaker=breaker)
    assert await limiter.hit(parse("5/minute"), "saturation", "client", fail_open=True) is None
    verdict = await limiter.hit(parse("5/minute"), "saturation", "client", fail_open=False)
    assert verdict is not None  # the per-process fallback counted it
    assert verdict.allowed
    logged = events(log_lines)
    assert logged.count("rate_limit_pool_saturated") == 2
    assert "rate_limit_storage_unavailable" not in logged
    assert breaker.available()


async def test_a_real_outage_still_opens_the_breaker() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    breaker = RedisBreaker(open_seconds=30)
    cache = Cache(client, ttl_seconds=60, breaker=breaker)

    async def load() -> dict[str, object]:
        return {"value": 1}

    try:
        assert await cache.get_or_load("saturation-test", "read", load) == {"value": 1}
    finally:
        await client.aclose()
    assert cache.errors == 1
    assert not breaker.available()
