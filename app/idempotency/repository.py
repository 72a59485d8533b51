"""Queries on idempotency keys; no business rules.

Every statement of the hot path is built once, at import, and executed with plain values:
a payment's request pays for no statement construction and no ORM unit of work here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency.models import IdempotencyKey

_TRY_LOCK = select(func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("name"), 0)))
_GET = select(
    IdempotencyKey.id,
    IdempotencyKey.fingerprint,
    IdempotencyKey.response_status,
    IdempotencyKey.response_body,
    IdempotencyKey.expires_at,
).where(
    IdempotencyKey.user_id == bindparam("user_id"),
    IdempotencyKey.endpoint == bindparam("endpoint"),
    IdempotencyKey.key == bindparam("idempotency_key"),
)
_DELETE = delete(IdempotencyKey).where(IdempotencyKey.id == bindparam("record_id"))
_INSERT = insert(IdempotencyKey)


@dataclass(frozen=True)
class StoredOutcome:
    """A completed request's record, as plain values."""

    id: uuid.UUID
    fingerprint: str
    response_status: int
    response_body: bytes
    expires_at: datetime


async def try_lock(session: AsyncSession, lock_name: str) -> bool:
    """Take a transaction-scoped advisory lock on `lock_name` without waiting.

    PostgreSQL releases it at commit or rollback — or when the connection dies — so an
    interrupted request never leaves its key locked.
    """
    return bool(await session.scalar(_TRY_LOCK, {"name": lock_name}))


async def get(
    session: AsyncSession, user_id: uuid.UUID, endpoint: str, key: str
) -> StoredOutcome | None:
    """The stored outcome for this key, if any.

    A statement of its own, after the lock: READ COMMITTED gives it a snapshot taken once the
    lock is held, so it sees the outcome of a request that held the lock before.
    """
    result = await session.execute(
        _GET, {"user_id": user_id, "endpoint": endpoint, "idempotency_key": key}
    )
    row = result.one_or_none()
    return None if row is None else StoredOutcome(*row)


async def add(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    endpoint: str,
    key: str,
    fingerprint: str,
    response_status: int,
    response_body: bytes,
    expires_at: datetime,
) -> None:
    """Store a completed outcome."""
    await session.execute(
        _INSERT,
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "endpoint": endpoint,
            "key": key,
            "fingerprint": fingerprint,
            "response_status": response_status,
            "response_body": response_body,
            "expires_at": expires_at,
        },
    )


async def remove(session: AsyncSession, record_id: uuid.UUID) -> None:
    """Forget one outcome (it expired)."""
    await session.execute(_DELETE, {"record_id": record_id})


async def delete_expired(session: AsyncSession, before: datetime) -> int:
    """Delete every key that expired before `before` (uses ix_idempotency_keys_expires_at)."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
