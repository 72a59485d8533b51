"""Queries on idempotency keys; no business rules."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency.models import IdempotencyKey


async def try_lock(session: AsyncSession, lock_name: str) -> bool:
    """Take a transaction-scoped advisory lock on `lock_name` without waiting.

    PostgreSQL releases it at commit or rollback — or when the connection dies — so an
    interrupted request never leaves its key locked.
    """
    locked = await session.scalar(
        select(func.pg_try_advisory_xact_lock(func.hashtextextended(lock_name, 0)))
    )
    return bool(locked)


async def get(
    session: AsyncSession, user_id: uuid.UUID, endpoint: str, key: str
) -> IdempotencyKey | None:
    """The stored outcome for this key, if any."""
    result = await session.execute(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.endpoint == endpoint,
            IdempotencyKey.key == key,
        )
    )
    return result.scalar_one_or_none()


async def add(session: AsyncSession, record: IdempotencyKey) -> None:
    """Store a completed outcome."""
    session.add(record)
    await session.flush()


async def remove(session: AsyncSession, record: IdempotencyKey) -> None:
    """Forget one outcome (it expired)."""
    await session.delete(record)
    await session.flush()


async def delete_expired(session: AsyncSession, before: datetime) -> int:
    """Delete every key that expired before `before` (uses ix_idempotency_keys_expires_at)."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
