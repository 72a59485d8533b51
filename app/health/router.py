"""HTTP probes: /health/live (process up) and /health/ready (dependencies reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.openapi import error_responses
from app.health.schemas import LivenessRead, ReadinessRead
from app.health.service import ReadinessProbe

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
async def get_readiness(request: Request) -> ReadinessRead:
    """Readiness: the database and Redis answer within a short timeout; 503 otherwise.

    A result is reused for about a second, so a flood of probes costs one check.
    """
    probe: ReadinessProbe = request.app.state.readiness
    return await probe.check()
