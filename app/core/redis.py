"""Redis client: one bounded, blocking pool per process with short timeouts."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import BlockingConnectionPool, Redis

from app.core.config import Settings


def create_redis(settings: Settings) -> Redis:
    """A client whose pool waits briefly for a free connection instead of opening unbounded ones.

    Nothing connects here: the API starts even when Redis is down (live, but not ready).
    """
    pool = BlockingConnectionPool.from_url(
        str(settings.REDIS_URL),
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
    )
    # from_pool hands the pool to the client, so aclose() also closes its connections.
    return Redis.from_pool(pool)


async def ping_redis(client: Redis, *, within_seconds: float) -> bool:
    """True when Redis answers PING within `within_seconds` seconds."""
    try:
        async with asyncio.timeout(within_seconds):
            return bool(await client.ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"; the caller logs it
        return False


def get_redis(request: Request) -> Redis:
    """The client the lifespan opened."""
    client: Redis = request.app.state.redis
    return client


RedisDep = Annotated[Redis, Depends(get_redis)]
