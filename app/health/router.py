"""HTTP probes: /health/live (process up) and /health/ready (dependencies reachable)."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.config import get_settings
from app.core.db import EngineDep
from app.core.openapi import error_responses
from app.core.redis import RedisDep
from app.health import service as health_service
from app.health.schemas import LivenessRead, ReadinessRead

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=LivenessRead, operation_id="get_liveness")
async def get_liveness() -> LivenessRead:
    """Liveness: the process runs and its event loop answers. Touches no dependency."""
    return LivenessRead()


@router.get(
    "/ready",
    response_model=ReadinessRead,
    operation_id="get_readiness",
    responses=error_responses(503),
)
async def get_readiness(engine: EngineDep, redis: RedisDep) -> ReadinessRead:
    """Readiness: the database and Redis answer within a short timeout; 503 otherwise."""
    return await health_service.check_readiness(
        engine=engine, redis=redis, within_seconds=get_settings().HEALTH_CHECK_TIMEOUT_SECONDS
    )
