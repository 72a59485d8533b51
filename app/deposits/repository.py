"""Queries of deposits. No business rules here."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.deposits.models import Deposit


async def add(session: AsyncSession, deposit: Deposit) -> Deposit:
    """Insert a deposit and load its server-side defaults (id, status, times)."""
    session.add(deposit)
    await session.flush()
    await session.refresh(deposit)
    return deposit


async def get(session: AsyncSession, *, deposit_id: uuid.UUID) -> Deposit | None:
    """One deposit by id, whoever owns it."""
    return await session.get(Deposit, deposit_id)


async def get_for_update(session: AsyncSession, *, deposit_id: uuid.UUID) -> Deposit | None:
    """One deposit, locked until the transaction ends (finishing it happens once)."""
    result = await session.execute(
        select(Deposit)
        .where(Deposit.id == deposit_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()
