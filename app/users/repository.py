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


async def set_password_hash(
    session: AsyncSession, user_id: uuid.UUID, password_hash: str, *, changed_at: datetime | None
) -> None:
    """Store a new hash; `changed_at` also moves the access-token cut-off (None: rehash only)."""
    values: dict[str, object] = {"password_hash": password_hash}
    if changed_at is not None:
        values["password_changed_at"] = changed_at
    await session.execute(update(User).where(User.id == user_id).values(**values))
