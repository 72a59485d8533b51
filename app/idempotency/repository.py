"""Queries on idempotency keys; no business rules.

Every statement of the hot path is built once, at import, and executed with plain values:
a payment's request pays for no statement construction and no ORM unit of work here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cleanup import expired_batch
from app.idempotency.models import IdempotencyKey

# The database's `idempotency_claim` (migration 7c3d2e9f1a54): the key's advisory lock and,
# once it is held, the stored outcome read in a fresh snapshot; one round trip.
_CLAIM = text(
    "SELECT locked, record_id, fingerprint, response_status, response_body, expires_at"
    " FROM idempotency_claim(:lock_name, :user_id, :endpoint, :idempotency_key)"
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


@dataclass(frozen=True)
class Claim:
    """Whether this transaction now holds the key's lock, and the key's stored outcome."""

    held: bool
    stored: StoredOutcome | None


async def claim(session: AsyncSession, *, user_id: uuid.UUID, endpoint: str, key: str) -> Claim:
    """Take the key's transaction-scoped lock without waiting; then its stored outcome, if any.

    Not held when another transaction holds the lock (nothing is read then). PostgreSQL
    releases the lock at commit or rollback — or when the connection dies — so an interrupted
    request never leaves its key locked. The outcome is read after the lock is granted, in a
    snapshot of its own, so it sees the outcome of a request that held the lock before.
    """
    row = (
        await session.execute(
            _CLAIM,
            {
                "lock_name": f"idempotency:{user_id}:{endpoint}:{key}",
                "user_id": user_id,
                "endpoint": endpoint,
                "idempotency_key": key,
            },
        )
    ).one()
    if not row.locked or row.record_id is None:
        return Claim(held=bool(row.locked), stored=None)
    stored = StoredOutcome(
        id=row.record_id,
        fingerprint=row.fingerprint,
        response_status=row.response_status,
        response_body=row.response_body,
        expires_at=row.expires_at,
    )
    return Claim(held=True, stored=stored)


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


async def delete_expired(session: AsyncSession, before: datetime, *, limit: int) -> int:
    """Delete at most `limit` keys that expired before `before` (ix_idempotency_keys_expires_at)."""
    result = await session.execute(expired_batch(IdempotencyKey, before=before, limit=limit))
    return int(result.rowcount)  # type: ignore[attr-defined]
