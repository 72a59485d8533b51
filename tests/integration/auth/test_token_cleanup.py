"""The clean-up of expired refresh tokens deletes only expired rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.models import RefreshToken
from app.core.security import hash_refresh_token
from tests.factories import signed_in_user


async def test_only_expired_tokens_are_deleted(client: AsyncClient, session: AsyncSession) -> None:
    expired = await signed_in_user(client)
    live = await signed_in_user(client)
    now = datetime.now(UTC)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(expired.refresh_token))
        .values(created_at=now - timedelta(days=20), expires_at=now - timedelta(days=1))
    )
    deleted = await auth_service.delete_expired_refresh_tokens(session, now=now, limit=1_000)
    assert deleted >= 1
    remaining = set((await session.execute(select(RefreshToken.token_hash))).scalars().all())
    assert hash_refresh_token(expired.refresh_token) not in remaining
    assert hash_refresh_token(live.refresh_token) in remaining
    assert (
        await session.scalar(
            select(func.count()).select_from(RefreshToken).where(RefreshToken.expires_at < now)
        )
        == 0
    )
