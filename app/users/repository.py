"""Queries on users; no business rules."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import User


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user with this id, if any."""
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (already normalised) email, if any."""
    result = await session.execute(select(User).where(User.email == email))
    return result.scalar_one_or_none()


async def add(session: AsyncSession, user: User) -> User:
    """Insert a user inside a savepoint, so a unique violation leaves the transaction usable."""
    async with session.begin_nested():
        session.add(user)
    return user


async def get_for_update(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user, row-locked until the transaction ends (serialises credential changes)."""
    result = await session.execute(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: new tokens may still reference it
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def replace_password_hash(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    old_hash: str,
    new_hash: str,
    changed_at: datetime | None,
) -> bool:
    """Store `new_hash` only if `old_hash` is still stored; False if it changed meanwhile.

    `changed_at` also moves the access-token cut-off (None: a rehash of the same password).
    """
    values: dict[str, object] = {"password_hash": new_hash}
    if changed_at is not None:
        values["password_changed_at"] = changed_at
    result = await session.execute(
        update(User).where(User.id == user_id, User.password_hash == old_hash).values(**values)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]
