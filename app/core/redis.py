"""Redis client: one bounded, blocking pool per process with short timeouts."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

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


def is_local_saturation(error: BaseException | None) -> bool:
    """True when `error` is this process's own pool wait timing out, not Redis failing.

    Under a burst every connection of the bounded pool is busy and a caller's wait times out
    (`No connection available.`): Redis itself is fine. Treating that as an outage opened the
    breaker, sent every cached read to the database and turned a local queue into a global
    fail-over (issue 14). Callers fall back for that one call and leave the breaker alone.
    """
    while error is not None:
        if isinstance(error, RedisConnectionError) and "No connection available" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


class RedisBreaker:
    """A small circuit breaker: after a Redis failure, skip Redis for a few seconds.

    Without it, a Redis that hangs (rather than refusing connections) would cost every request
    its socket timeout once per Redis call (rate limit, cached caller, cached read). While the
    breaker is open, callers go straight to their fallback (database, per-process limiter).
    """

    def __init__(self, *, open_seconds: float) -> None:
        self.open_seconds = open_seconds
        self._open_until = 0.0
        self.trips = 0

    def available(self) -> bool:
        """False while the breaker is open (a recent failure): do not try Redis."""
        return time.monotonic() >= self._open_until

    def record_failure(self) -> None:
        """A Redis call failed: open the breaker."""
        if self.available():
            self.trips += 1
        self._open_until = time.monotonic() + self.open_seconds
