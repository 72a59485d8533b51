"""Queries on payments; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import KeysetPosition
from app.payments.models import Payment
from app.payments.schemas import PaymentFilters


async def add(session: AsyncSession, payment: Payment) -> Payment:
    """Insert a payment and load its server-side defaults (RETURNING: no extra query)."""
    session.add(payment)
    await session.flush()
    return payment


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, payment_id: uuid.UUID
) -> Payment | None:
    """The payment, if this user made it."""
    result = await session.execute(
        select(Payment).where(Payment.id == payment_id, Payment.owner_id == owner_id)
    )
    return result.scalar_one_or_none()


async def list_owned(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    filters: PaymentFilters,
    after: KeysetPosition | None,
    limit: int,
) -> Sequence[Payment]:
    """A user's payments, newest first, `limit + 1` rows, filtered; one query."""
    query = select(Payment).where(Payment.owner_id == owner_id)
    if filters.status is not None:
        query = query.where(Payment.status == filters.status)
    if filters.account_id is not None:
        query = query.where(
            or_(
                Payment.source_account_id == filters.account_id,
                Payment.destination_account_id == filters.account_id,
            )
        )
    if filters.created_after is not None:
        query = query.where(Payment.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Payment.created_at < filters.created_before)
    if after is not None:
        query = query.where(tuple_(Payment.created_at, Payment.id) < (after.created_at, after.id))
    query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit + 1)
    return (await session.execute(query)).scalars().all()
