"""Queries of deposits. No business rules here."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.deposits.models import Deposit, DepositReceipt, WebhookEvent
from app.deposits.schemas import DepositStatus


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


async def record_event(
    session: AsyncSession, *, event_id: str, event_type: str, deposit_id: uuid.UUID
) -> bool:
    """Record a provider event; False when its id was recorded before (a redelivery).

    A concurrent delivery of the same id waits here for the first one's transaction, then
    sees the conflict: the UNIQUE key decides, not a read-then-write race.
    """
    inserted = await session.execute(
        insert(WebhookEvent)
        .values(id=event_id, type=event_type, deposit_id=deposit_id)
        .on_conflict_do_nothing(index_elements=[WebhookEvent.id])
        .returning(WebhookEvent.id)
    )
    return inserted.scalar_one_or_none() is not None


async def claim_receipt(
    session: AsyncSession, *, deposit_id: uuid.UUID, claim_id: uuid.UUID
) -> bool:
    """Claim the one receipt of a deposit for the attempt `claim_id`; False when it was claimed."""
    inserted = await session.execute(
        insert(DepositReceipt)
        .values(deposit_id=deposit_id, claim_id=claim_id)
        .on_conflict_do_nothing(index_elements=[DepositReceipt.deposit_id])
        .returning(DepositReceipt.deposit_id)
    )
    return inserted.scalar_one_or_none() is not None


async def receipt_claim_id(session: AsyncSession, *, deposit_id: uuid.UUID) -> uuid.UUID | None:
    """The attempt that claimed the deposit's receipt; None when nobody has (or it is unknown)."""
    claim_id: uuid.UUID | None = await session.scalar(
        select(DepositReceipt.claim_id).where(DepositReceipt.deposit_id == deposit_id)
    )
    return claim_id


async def mark_receipt_sent(session: AsyncSession, *, deposit_id: uuid.UUID) -> None:
    """The mail server accepted the receipt."""
    await session.execute(
        update(DepositReceipt)
        .where(DepositReceipt.deposit_id == deposit_id)
        .values(sent_at=func.now())
    )


async def release_receipt(session: AsyncSession, *, deposit_id: uuid.UUID) -> None:
    """Give a claim back: the receipt was certainly not sent, so a later attempt may send it."""
    await session.execute(
        delete(DepositReceipt).where(
            DepositReceipt.deposit_id == deposit_id, DepositReceipt.sent_at.is_(None)
        )
    )


async def stale_pending(
    session: AsyncSession, *, untouched_for: timedelta, limit: int
) -> list[uuid.UUID]:
    """Pending deposits not updated for a while, oldest first (the partial index serves it)."""
    result = await session.execute(
        select(Deposit.id)
        .where(
            Deposit.status == DepositStatus.PENDING,
            Deposit.updated_at < func.now() - untouched_for,
        )
        .order_by(Deposit.updated_at)
        .limit(limit)
    )
    return list(result.scalars())


async def touch(session: AsyncSession, *, deposit_ids: list[uuid.UUID]) -> None:
    """Mark pending deposits as just looked at, so the sweeper waits before re-driving again."""
    await session.execute(
        update(Deposit)
        .where(Deposit.id.in_(deposit_ids), Deposit.status == DepositStatus.PENDING)
        .values(updated_at=func.now())
    )


async def unreceipted(
    session: AsyncSession, *, untouched_for: timedelta, within: timedelta, limit: int
) -> list[uuid.UUID]:
    """Succeeded deposits (of the last `within`) whose receipt was never claimed, or given back."""
    result = await session.execute(
        select(Deposit.id)
        .where(
            Deposit.status == DepositStatus.SUCCEEDED,
            Deposit.updated_at < func.now() - untouched_for,
            Deposit.updated_at > func.now() - within,
            ~exists().where(DepositReceipt.deposit_id == Deposit.id),
        )
        .order_by(Deposit.updated_at)
        .limit(limit)
    )
    return list(result.scalars())
