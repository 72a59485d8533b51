"""Deposits' background work: take ids, open their own sessions, never hold one while waiting."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import Context, TaskiqDepends

from app.core.broker import broker
from app.core.logging import get_logger
from app.deposits import service as deposits_service
from app.deposits.provider import PaymentProvider, ProviderUnavailableError

logger = get_logger(__name__)
COMPLETE_TASK = deposits_service.COMPLETE_TASK
# The provider errors: retried in the task with a growing pause (1, 2, 4, 8 s), all well inside
# the task's timeout, which is itself well inside TASK_REDELIVERY_SECONDS' default of 60.
PROVIDER_ATTEMPTS = 5
TASK_TIMEOUT_SECONDS = 30


async def complete_deposit(
    deposit_id: uuid.UUID, *, sessions: async_sessionmaker[AsyncSession], provider: PaymentProvider
) -> str:
    """Charge a pending deposit and finish it; the resulting status. Idempotent.

    Two short transactions around the provider's call: no row lock and no pooled connection is
    held while the card is charged. ProviderUnavailableError propagates: the caller retries.
    """
    async with sessions() as session:
        request = await deposits_service.charge_request(session, deposit_id=deposit_id)
    if request is None:
        return "final"
    logger.info("deposit_charging", deposit_id=str(deposit_id), amount=request.amount)
    charge = await provider.charge(
        deposit_id=request.deposit_id, amount=request.amount, currency=request.currency
    )
    async with sessions() as session, session.begin():
        return await deposits_service.finish_deposit(session, deposit_id=deposit_id, charge=charge)


@broker.task(task_name=COMPLETE_TASK, timeout=TASK_TIMEOUT_SECONDS)
async def complete_deposit_task(
    deposit_id: str, context: Annotated[Context, TaskiqDepends()]
) -> str:
    """The worker's entry point: `complete_deposit`, retried with backoff on provider errors."""
    state = context.state
    for attempt in range(1, PROVIDER_ATTEMPTS + 1):
        try:
            return await complete_deposit(
                uuid.UUID(deposit_id), sessions=state.sessions, provider=state.provider
            )
        except ProviderUnavailableError:
            if attempt == PROVIDER_ATTEMPTS:
                raise
            await asyncio.sleep(2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
