"""Readiness: the database and Redis are checked concurrently, each with a short timeout.

A probe flood must not starve the requests it is meant to protect: a check's result is reused
for `HEALTH_CACHE_SECONDS`, and concurrent probes share the one check in flight, so however many
probes arrive, readiness holds at most one database connection at a time.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import ping_database
from app.core.errors import ServiceUnavailableError
from app.core.lifecycle import is_draining
from app.core.logging import get_logger
from app.core.redis import ping_redis
from app.health.schemas import ReadinessRead

logger = get_logger(__name__)


class ReadinessProbe:
    """Checks the dependencies at most once per `reuse_seconds`, one check at a time."""

    def __init__(
        self, *, engine: AsyncEngine, redis: Redis, within_seconds: float, reuse_seconds: float
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._within = within_seconds
        self._reuse = reuse_seconds
        self._failing: list[str] = []
        self._checked_at = float("-inf")
        self._in_flight: asyncio.Task[list[str]] | None = None
        self.checks = 0

    async def check(self) -> ReadinessRead:
        """Ready, or ServiceUnavailableError naming what failed (draining: never ready)."""
        if is_draining():  # never cached: load balancers must see the drain at once
            raise ServiceUnavailableError("Not ready: shutting down.")
        if time.monotonic() - self._checked_at >= self._reuse:
            if self._in_flight is None:
                self._in_flight = asyncio.create_task(self._ping())
            try:
                # shield: a probe that gives up does not cancel the check the others wait for
                self._failing = await asyncio.shield(self._in_flight)
            finally:
                if self._in_flight is not None and self._in_flight.done():
                    self._in_flight = None
        if self._failing:
            raise ServiceUnavailableError(f"Not ready: {', '.join(self._failing)} unreachable.")
        return ReadinessRead(checks={"database": "ok", "redis": "ok"})

    async def _ping(self) -> list[str]:
        self.checks += 1
        database_ok, redis_ok = await asyncio.gather(
            ping_database(self._engine, within_seconds=self._within),
            ping_redis(self._redis, within_seconds=self._within),
        )
        self._checked_at = time.monotonic()
        failing = [name for name, ok in (("database", database_ok), ("redis", redis_ok)) if not ok]
        if failing:
            logger.warning("readiness_failed", failing=failing)
        return failing
