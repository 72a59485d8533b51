"""Use cases of authentication. Never commits: the request's transaction does.

Refresh tokens rotate: each use marks the presented token used and issues a child in the same
family. A used token presented again means it was copied — the whole family is revoked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository
from app.auth.errors import (
    InvalidCredentialsError,
    InvalidTokenError,
    RefreshTokenReusedError,
    TokenExpiredError,
)
from app.auth.models import RefreshToken
from app.auth.schemas import PASSWORD_MAX_LENGTH, TokenPair, UserCreate, password_problems
from app.core.cache import Cache
from app.core.config import Settings
from app.core.errors import FieldError, ValidationFailedError
from app.core.logging import get_logger
from app.core.security import (
    AccessClaims,
    JwtExpiredError,
    JwtInvalidError,
    PasswordHasher,
    create_access_token,
    decode_access_token,
    hash_refresh_token,
    new_refresh_token,
)
from app.users import service as users_service
from app.users.schemas import Principal, UserRead

logger = get_logger(__name__)


async def register(session: AsyncSession, *, hasher: PasswordHasher, data: UserCreate) -> UserRead:
    """Create a user account with an Argon2id hash of its password."""
    password_hash = await hasher.hash(data.password)
    return await users_service.create_user(
        session, email=data.email, password_hash=password_hash, full_name=data.full_name
    )


async def login(
    sessions: async_sessionmaker[AsyncSession],
    *,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
) -> TokenPair:
    """Check the password and open a new token family; one answer for every failure.

    The one use case that runs its own transactions (ADR 0013): a short read, then the
    Argon2 verify with no database connection held, then a short write. Holding a pooled
    connection through a ~100 ms hash would let a login flood starve every other request.
    """
    if len(password) > PASSWORD_MAX_LENGTH or len(email) > 320:
        raise InvalidCredentialsError
    async with sessions() as session:
        credentials = await users_service.get_credentials(session, email=email)
    if credentials is None:
        # Same work as a real check, so response time does not reveal unknown emails.
        await hasher.verify_dummy(password)
        raise InvalidCredentialsError
    valid, upgraded_hash = await hasher.verify(password, credentials.password_hash)
    if not valid or not credentials.is_active:
        raise InvalidCredentialsError
    async with sessions() as session, session.begin():
        # A password change or deactivation that committed during the hash wins: this login
        # proved only a password that is no longer the account's.
        current = await users_service.lock_credentials(session, user_id=credentials.id)
        if current != credentials:
            raise InvalidCredentialsError
        if upgraded_hash is not None:  # parameters were raised since this hash was made
            await users_service.replace_password_hash(
                session,
                user_id=credentials.id,
                old_hash=credentials.password_hash,
                new_hash=upgraded_hash,
                changed_at=None,
            )
        tokens = await _issue_tokens(
            session, settings=settings, user_id=credentials.id, family_id=uuid.uuid4(), parent=None
        )
    logger.info("login_succeeded", user_id=str(credentials.id))
    return tokens


async def refresh(
    sessions: async_sessionmaker[AsyncSession], *, settings: Settings, refresh_token: str
) -> TokenPair:
    """Rotate a refresh token; a rotated token presented again revokes its whole family.

    Runs its own short transaction (like login, ADR 0013): the revocation of a reused token's
    family must commit although the request fails, so it commits first and the 401 follows.
    """
    async with sessions() as session, session.begin():
        outcome = await _rotate(session, settings=settings, refresh_token=refresh_token)
    if outcome is None:
        raise RefreshTokenReusedError
    return outcome


async def _rotate(
    session: AsyncSession, *, settings: Settings, refresh_token: str
) -> TokenPair | None:
    """The new pair, or None once a reused token's family is revoked (to be committed)."""
    now = datetime.now(UTC)
    stored = await repository.get_for_update(session, hash_refresh_token(refresh_token))
    if stored is None or stored.revoked_at is not None:
        raise InvalidTokenError
    if stored.used_at is not None:
        if now - stored.used_at <= timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS):
            # A double-submit racing its own rotation (two tabs, a retry): refuse without
            # revoking, so the winner's new token keeps working.
            raise InvalidTokenError("This refresh token was just rotated; use the newest one.")
        await repository.revoke_family(session, stored.family_id, now)
        logger.warning(
            "refresh_token_reused", user_id=str(stored.user_id), family_id=str(stored.family_id)
        )
        return None
    if stored.expires_at <= now:
        raise TokenExpiredError("The refresh token has expired; sign in again.")
    principal = await users_service.get_principal(session, user_id=stored.user_id)
    if principal is None or not principal.is_active:
        raise InvalidTokenError
    stored.used_at = now
    return await _issue_tokens(
        session,
        settings=settings,
        user_id=stored.user_id,
        family_id=stored.family_id,
        parent=stored.id,
        now=now,
    )


async def logout(session: AsyncSession, *, refresh_token: str) -> None:
    """Revoke the family of this refresh token (unknown tokens are ignored: idempotent)."""
    stored = await repository.get_for_update(session, hash_refresh_token(refresh_token))
    if stored is not None:
        await repository.revoke_family(session, stored.family_id, datetime.now(UTC))


def _verified(access_token: str, settings: Settings) -> tuple[AccessClaims, uuid.UUID]:
    """An access token's checked claims and the user they name; 401 (raised) for anything else."""
    try:
        claims = decode_access_token(access_token, settings=settings)
    except JwtExpiredError:
        raise TokenExpiredError from None
    except JwtInvalidError:
        raise InvalidTokenError from None
    try:
        return claims, uuid.UUID(claims.subject)
    except ValueError:
        raise InvalidTokenError from None


def token_user_id(access_token: str, *, settings: Settings) -> uuid.UUID | None:
    """The user an access token names, if `authenticate` would accept it; None if it is a 401.

    For reading cache entries ahead (ADR 0022): the token is verified as `authenticate` does
    it, and remembered, so `authenticate`'s own check costs a dictionary lookup. Whether the
    user is still active is `authenticate`'s to say.
    """
    try:
        _, user_id = _verified(access_token, settings)
    except (TokenExpiredError, InvalidTokenError):
        return None
    return user_id


async def authenticate(
    session: AsyncSession, *, settings: Settings, access_token: str, cache: Cache | None = None
) -> Principal:
    """The active user an access token speaks for; 401 for anything else."""
    claims, user_id = _verified(access_token, settings)
    principal = await users_service.get_principal(session, user_id=user_id, cache=cache)
    if principal is None or not principal.is_active:
        raise InvalidTokenError
    if claims.issued_at < principal.password_changed_at:
        # The cut-off moves on a password change and on a deactivation.
        raise InvalidTokenError(
            "The password was changed or the account deactivated since this token was issued; "
            "sign in again."
        )
    return principal


async def change_password(
    session: AsyncSession,
    *,
    sessions: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    user_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> None:
    """Replace the password, then revoke every refresh token and older access token.

    Holds no pooled connection while Argon2 runs (ADR 0013): the current hash is read in a
    short session of its own (`sessions`), both hashes run with no connection held, and only
    then does the request's `session` take its connection, for the write. The write replaces
    the hash only if it is still the one verified, so of two racing changes one wins.
    """
    async with sessions() as read_session:
        credentials = await users_service.get_credentials_by_id(read_session, user_id=user_id)
    if credentials is None:
        raise InvalidTokenError
    valid, _ = await hasher.verify(current_password, credentials.password_hash)
    if not valid:
        raise _current_password_incorrect()
    problems = password_problems(new_password, email=credentials.email)
    if problems:
        raise ValidationFailedError(
            "The new password is not acceptable.",
            fields=[_field("new_password", "; ".join(problems), "password_policy")],
        )
    new_hash = await hasher.hash(new_password)
    now = datetime.now(UTC)
    replaced = await users_service.replace_password_hash(
        session,
        user_id=user_id,
        old_hash=credentials.password_hash,
        new_hash=new_hash,
        changed_at=now,
    )
    if not replaced:  # changed by a concurrent request since we read it: that one stands
        raise _current_password_incorrect()
    revoked = await repository.revoke_all_for_user(session, user_id, now)
    logger.info("password_changed", user_id=str(user_id), revoked_refresh_tokens=revoked)


async def set_user_active(
    session: AsyncSession, *, admin_id: uuid.UUID, user_id: uuid.UUID, is_active: bool
) -> None:
    """Deactivate or reactivate a user (back office); deactivation ends every session at once.

    It revokes the user's refresh tokens and cuts off older access tokens; the cached
    principal is invalidated when the transaction commits, so the next request is refused.
    """
    if user_id == admin_id and not is_active:
        raise ValidationFailedError(
            "An admin cannot deactivate their own account.",
            fields=[_field("is_active", "You cannot deactivate yourself.", "self_deactivation")],
        )
    now = datetime.now(UTC)
    await users_service.set_active(session, user_id=user_id, is_active=is_active, now=now)
    revoked = 0 if is_active else await repository.revoke_all_for_user(session, user_id, now)
    logger.info(
        "user_active_set",
        user_id=str(user_id),
        admin_id=str(admin_id),
        is_active=is_active,
        revoked_refresh_tokens=revoked,
    )


async def delete_expired_refresh_tokens(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Delete at most `limit` refresh tokens past their expiry (the scheduler's clean-up)."""
    return await repository.delete_expired(session, now, limit=limit)


async def _issue_tokens(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    parent: uuid.UUID | None,
    now: datetime | None = None,
) -> TokenPair:
    now = now or datetime.now(UTC)
    access_token, lifetime = create_access_token(subject=str(user_id), settings=settings, now=now)
    refresh_token = new_refresh_token()
    await repository.add_refresh_token(
        session,
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            parent_id=parent,
            token_hash=hash_refresh_token(refresh_token),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
        ),
    )
    return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=lifetime)


def _current_password_incorrect() -> ValidationFailedError:
    return ValidationFailedError(
        "The current password is incorrect.",
        fields=[_field("current_password", "Incorrect password.", "password_incorrect")],
    )


def _field(name: str, message: str, kind: str) -> FieldError:
    return FieldError(field=f"body.{name}", message=message, type=kind)
