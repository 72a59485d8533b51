"""Readiness: the database and Redis are checked concurrently, each with a short timeout."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import ping_database
from app.core.errors import ServiceUnavailableError
from app.core.lifecycle import is_draining
from app.core.logging import get_logger
from app.core.redis import ping_redis
from app.health.schemas import ReadinessRead

logger = get_logger(__name__)


async def check_readiness(
    *, engine: AsyncEngine, redis: Redis, within_seconds: float
) -> ReadinessRead:
    """Ping every dependency; raise ServiceUnavailableError naming the ones that failed.

    A draining process (SIGTERM received) is not ready whatever its dependencies say.
    """
    if is_draining():
        raise ServiceUnavailableError("Not ready: shutting down.")
    database_ok, redis_ok = await asyncio.gather(
        ping_database(engine, within_seconds=within_seconds),
        ping_redis(redis, within_seconds=within_seconds),
    )
    failing = [name for name, ok in (("database", database_ok), ("redis", redis_ok)) if not ok]
    if failing:
        logger.warning("readiness_failed", failing=failing)
        raise ServiceUnavailableError(f"Not ready: {', '.join(failing)} unreachable.")
    return ReadinessRead(checks={"database": "ok", "redis": "ok"})
