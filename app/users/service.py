"""Use cases of the users module: create, read and update users. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cache import Cache, Entry, mark_stale
from app.core.errors import NotFoundError
from app.users import repository
from app.users.errors import EmailTakenError
from app.users.models import User
from app.users.schemas import (
    Principal,
    Role,
    UserAdminRead,
    UserCredentials,
    UserRead,
    UserUpdate,
)


def normalize_email(email: str) -> str:
    """The one canonical form of an email: trimmed and lower-cased."""
    return email.strip().lower()


async def create_user(
    session: AsyncSession, *, email: str, password_hash: str, full_name: str, role: Role = Role.USER
) -> UserRead:
    """Insert a user; EmailTakenError if the email (any case) is already registered."""
    user = User(
        email=normalize_email(email),
        password_hash=password_hash,
        full_name=full_name,
        role=role,
    )
    try:
        await repository.add(session, user)
    except IntegrityError as error:
        if "uq_users_email" in str(error.orig):
            raise EmailTakenError from None
        raise
    return UserRead.model_validate(user)


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> UserRead:
    """The user's profile; NotFoundError if there is no such user."""
    user = await _existing(session, user_id)
    return UserRead.model_validate(user)


def cache_scope(user_id: uuid.UUID) -> str:
    """The cache scope of everything derived from one user's row."""
    return f"user:{user_id}"


def principal_cache_entry(user_id: uuid.UUID) -> Entry:
    """The cache entry `get_principal` reads, for a caller that has it read ahead (ADR 0022)."""
    return cache_scope(user_id), "principal"


async def get_principal(
    session: AsyncSession, *, user_id: uuid.UUID, cache: Cache | None = None
) -> Principal | None:
    """Who is calling (role, active flag, password change time), or None if unknown.

    With `cache`, read through it: every authenticated request asks, and the answer changes
    only when the row does (each such change marks the user's scope stale).
    """

    async def load() -> dict[str, Any] | None:
        user = await repository.get_by_id(session, user_id)
        return Principal.model_validate(user).model_dump(mode="json") if user else None

    if cache is None:
        data = await load()
    else:
        data = await cache.get_or_load(*principal_cache_entry(user_id), load)
    return Principal.model_validate(data) if data is not None else None


async def get_credentials(session: AsyncSession, *, email: str) -> UserCredentials | None:
    """The stored hash for this email, for the auth module only; None if unknown."""
    user = await repository.get_by_email(session, normalize_email(email))
    return UserCredentials.model_validate(user) if user is not None else None


async def get_credentials_by_id(
    session: AsyncSession, *, user_id: uuid.UUID
) -> UserCredentials | None:
    """The stored hash for this user, for the auth module only; None if unknown."""
    user = await repository.get_by_id(session, user_id)
    return UserCredentials.model_validate(user) if user is not None else None


async def lock_credentials(session: AsyncSession, *, user_id: uuid.UUID) -> UserCredentials | None:
    """The stored hash, with the row locked until the transaction ends; None if unknown.

    A password change or deactivation committing meanwhile waits, and one that committed
    earlier is seen: the caller can tell whether the hash it verified is still current.
    """
    user = await repository.get_for_update(session, user_id)
    return UserCredentials.model_validate(user) if user is not None else None


async def replace_password_hash(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    old_hash: str,
    new_hash: str,
    changed_at: datetime | None,
) -> bool:
    """Swap the hash if `old_hash` is still the stored one; False if it changed meanwhile.

    The hash was verified with no transaction open (ADR 0013), so another change may have won
    in between: that one stands. With `changed_at`, older access tokens stop working.
    """
    replaced = await repository.replace_password_hash(
        session, user_id, old_hash=old_hash, new_hash=new_hash, changed_at=changed_at
    )
    if replaced and changed_at is not None:
        mark_stale(session, cache_scope(user_id))
    return replaced


async def update_profile(
    session: AsyncSession, *, user_id: uuid.UUID, changes: UserUpdate
) -> UserRead:
    """Apply the fields the caller sent (PATCH semantics)."""
    user = await _existing(session, user_id)
    for field, value in changes.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(user, field, value)
    await session.flush()
    mark_stale(session, cache_scope(user_id))
    await session.refresh(user)
    return UserRead.model_validate(user)


async def set_active(
    session: AsyncSession, *, user_id: uuid.UUID, is_active: bool, now: datetime
) -> None:
    """Activate or deactivate a user; NotFoundError if there is no such user.

    Deactivating also moves the access-token cut-off (`password_changed_at`, ADR 0012) to
    `now`: tokens issued before a deactivation stay refused after a reactivation.
    """
    user = await _existing(session, user_id)
    if user.is_active == is_active:
        return
    user.is_active = is_active
    if not is_active:
        user.password_changed_at = now
    await session.flush()
    mark_stale(session, cache_scope(user_id))  # the cached principal: refused from now on
    await session.refresh(user)


async def get_user_admin_view(session: AsyncSession, *, user_id: uuid.UUID) -> UserAdminRead:
    """The user as the back office sees it; NotFoundError if there is no such user."""
    user = await _existing(session, user_id)
    return UserAdminRead.model_validate(user)


async def promote_to_admin(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Give a user the admin role (used by the seed)."""
    user = await _existing(session, user_id)
    user.role = Role.ADMIN
    await session.flush()
    mark_stale(session, cache_scope(user_id))


async def _existing(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user with this id; NotFoundError if there is none."""
    user = await repository.get_by_id(session, user_id)
    if user is None:
        raise NotFoundError
    return user
