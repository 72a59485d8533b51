"""The clean-up of expired refresh tokens deletes only expired rows, through its index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import func, select, text, update
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


# The shape of `auth.repository.delete_expired`'s statement: one batch, found by expiry.
_BATCH_DELETE = (
    "DELETE FROM refresh_tokens WHERE id IN "
    "(SELECT id FROM refresh_tokens WHERE expires_at < now() LIMIT 5000)"
)


async def test_the_clean_up_query_can_use_the_expiry_index(session: AsyncSession) -> None:
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = (await session.execute(text(f"EXPLAIN {_BATCH_DELETE}"))).scalars().all()
    assert "ix_refresh_tokens_expires_at" in "\n".join(plan)
