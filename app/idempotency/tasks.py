"""The idempotency keys' periodic clean-up, sent by the scheduler (app.worker:scheduler)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from taskiq import Context, TaskiqDepends

from app.core.broker import TASK_TIMEOUT_SECONDS, broker
from app.core.cleanup import delete_in_batches
from app.idempotency import service as idempotency_service


@broker.task(
    task_name="idempotency.delete_expired",
    timeout=TASK_TIMEOUT_SECONDS,
    schedule=[{"cron": "*/15 * * * *"}],
)
async def delete_expired_keys_task(context: Annotated[Context, TaskiqDepends()]) -> int:
    """Delete the keys past their expiry (24 h by default), in batches; how many."""
    deleted, _ = await delete_in_batches(
        context.state.sessions,
        idempotency_service.delete_expired_keys,
        now=datetime.now(UTC),
        budget_seconds=TASK_TIMEOUT_SECONDS / 2,
        event="idempotency_keys_deleted",
    )
    return deleted
