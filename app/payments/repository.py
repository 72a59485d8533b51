"""Queries on payments; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import KeysetPosition
from app.payments.models import Payment
from app.payments.schemas import PaymentFilters

# Built once, executed with plain values: the hot path needs no ORM unit of work (no identity
# map, no flush plan) for a row it never reads back.
_INSERT = insert(Payment).returning(Payment.id, Payment.created_at)


async def insert_payment(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    source_account_id: uuid.UUID,
    destination_account_id: uuid.UUID,
    amount: int,
    description: str,
    status: str,
    failure_code: str | None,
    ledger_transaction_id: uuid.UUID | None,
) -> tuple[uuid.UUID, datetime]:
    """Insert a payment; its id and creation time (RETURNING: no extra query)."""
    payment_id = uuid.uuid4()
    row = (
        await session.execute(
            _INSERT,
            {
                "id": payment_id,
                "owner_id": owner_id,
                "source_account_id": source_account_id,
                "destination_account_id": destination_account_id,
                "amount": amount,
                "description": description,
                "status": status,
                "failure_code": failure_code,
                "ledger_transaction_id": ledger_transaction_id,
            },
        )
    ).one()
    return row.id, row.created_at


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
