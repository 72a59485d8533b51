"""Deposits' background work: take ids, open their own sessions, never hold one while waiting."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.deposits import service as deposits_service
from app.deposits.provider import PaymentProvider


async def complete_deposit(
    deposit_id: uuid.UUID, *, sessions: async_sessionmaker[AsyncSession], provider: PaymentProvider
) -> str:
    """Charge a pending deposit and finish it; the resulting status. Idempotent.

    Two short transactions around the provider's call: no row lock and no pooled connection is
    held while the card is charged. ProviderUnavailableError propagates: the task is retried.
    """
    async with sessions() as session:
        request = await deposits_service.charge_request(session, deposit_id=deposit_id)
    if request is None:
        return "final"
    charge = await provider.charge(
        deposit_id=request.deposit_id, amount=request.amount, currency=request.currency
    )
    async with sessions() as session, session.begin():
        return await deposits_service.finish_deposit(session, deposit_id=deposit_id, charge=charge)
