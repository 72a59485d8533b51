"""The refresh tokens' periodic clean-up, sent by the scheduler (app.worker:scheduler)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from taskiq import Context, TaskiqDepends

from app.auth import service as auth_service
from app.core.broker import TASK_TIMEOUT_SECONDS, broker
from app.core.cleanup import delete_in_batches


@broker.task(
    task_name="auth.delete_expired_refresh_tokens",
    timeout=TASK_TIMEOUT_SECONDS,
    schedule=[{"cron": "7 * * * *"}],
)
async def delete_expired_refresh_tokens_task(context: Annotated[Context, TaskiqDepends()]) -> int:
    """Delete the refresh tokens past their expiry, in batches; how many."""
    deleted, _ = await delete_in_batches(
        context.state.sessions,
        auth_service.delete_expired_refresh_tokens,
        now=datetime.now(UTC),
        budget_seconds=TASK_TIMEOUT_SECONDS / 2,
        event="refresh_tokens_deleted",
    )
    return deleted
