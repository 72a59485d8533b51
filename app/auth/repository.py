"""Queries on refresh tokens; no business rules."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import RefreshToken
from app.core.cleanup import expired_batch


async def add_refresh_token(session: AsyncSession, token: RefreshToken) -> None:
    """Insert a token row."""
    session.add(token)
    await session.flush()


async def get_for_update(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """The token with this hash, row-locked until the transaction ends (serialises rotation)."""
    result = await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )
    return result.scalar_one_or_none()


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> int:
    """Revoke every live token of a family; return how many."""
    return await _revoke(session, RefreshToken.family_id == family_id, now)


async def revoke_all_for_user(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """Revoke every live token of a user; return how many."""
    return await _revoke(session, RefreshToken.user_id == user_id, now)


async def _revoke(session: AsyncSession, which: ColumnElement[bool], now: datetime) -> int:
    result = await session.execute(
        update(RefreshToken).where(which, RefreshToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_expired(session: AsyncSession, before: datetime, *, limit: int) -> int:
    """Delete at most `limit` tokens that expired before `before` (ix_refresh_tokens_expires_at)."""
    result = await session.execute(expired_batch(RefreshToken, before=before, limit=limit))
    return int(result.rowcount)  # type: ignore[attr-defined]
