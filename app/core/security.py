"""Security primitives: Argon2id hashing off the event loop, JWT access and opaque refresh tokens.

Pure helpers (no database, no HTTP); the auth module builds on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core.config import Settings

# Pinned: the algorithm is never read from the token, so `alg: none` or an RS/HS confusion
# cannot be smuggled in.
JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
REQUIRED_CLAIMS = ("sub", "exp", "iat", "nbf", "jti", "type", "iss", "aud")


class JwtInvalidError(Exception):
    """The token is malformed, forged, of the wrong type, or fails a claim check."""


class JwtExpiredError(JwtInvalidError):
    """The token was valid but its `exp` has passed."""


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    subject: str
    token_id: str
    issued_at: datetime
    expires_at: datetime
    not_before: datetime


def create_access_token(
    *, subject: str, settings: Settings, now: datetime | None = None
) -> tuple[str, int]:
    """Sign an access token for `subject`; return it and its lifetime in seconds."""
    issued = now or datetime.now(UTC)
    lifetime = settings.ACCESS_TOKEN_TTL_SECONDS
    claims = {
        "sub": subject,
        # Fractional seconds (RFC 7519 allows them): a token issued just before a password
        # change is told apart from one issued just after.
        "iat": issued.timestamp(),
        "nbf": issued,
        "exp": issued + timedelta(seconds=lifetime),
        "jti": uuid.uuid4().hex,
        "type": ACCESS_TOKEN_TYPE,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    token = jwt.encode(claims, settings.SECRET_KEY.get_secret_value(), algorithm=JWT_ALGORITHM)
    return token, lifetime


# Tokens verified by this process, so a client's every request does not verify the same
# signature and claims again (~5 % of a cached read). Keyed by everything the verification
# depends on; the time-bound claims (exp, nbf) are checked again on every use. Bounded: the
# least recently used are forgotten. Only the event loop's thread touches it.
VERIFIED_TOKENS_MAX = 4096
_verified: OrderedDict[tuple[str, str, str, str], AccessClaims] = OrderedDict()


def decode_access_token(token: str, *, settings: Settings) -> AccessClaims:
    """Verify signature, algorithm, every required claim, issuer, audience and type."""
    key = (
        token,
        settings.SECRET_KEY.get_secret_value(),
        settings.JWT_AUDIENCE,
        settings.JWT_ISSUER,
    )
    claims = _verified.get(key)
    if claims is None:
        claims = _verify(token, settings=settings)
        _verified[key] = claims
        while len(_verified) > VERIFIED_TOKENS_MAX:
            _verified.popitem(last=False)
        return claims
    _verified.move_to_end(key)
    # PyJWT's own tests, with the same leeway.
    now = time.time()
    if claims.expires_at.timestamp() <= now - settings.JWT_LEEWAY_SECONDS:
        raise JwtExpiredError("token expired")
    if claims.not_before.timestamp() > now + settings.JWT_LEEWAY_SECONDS:
        raise JwtInvalidError("ImmatureSignatureError")
    return claims


def _verify(token: str, *, settings: Settings) -> AccessClaims:
    """PyJWT's verification (signature, claims, times) and our own checks of the claims."""
    try:
        claims = jwt.decode(
            token,
            settings.SECRET_KEY.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            leeway=settings.JWT_LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    except jwt.ExpiredSignatureError as error:
        raise JwtExpiredError("token expired") from error
    except jwt.PyJWTError as error:
        raise JwtInvalidError(type(error).__name__) from error
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise JwtInvalidError("not an access token")
    subject, token_id = claims.get("sub"), claims.get("jti")
    if not isinstance(subject, str) or not isinstance(token_id, str):
        raise JwtInvalidError("sub and jti must be strings")
    return AccessClaims(
        subject=subject,
        token_id=token_id,
        issued_at=_instant(claims, "iat"),
        expires_at=_instant(claims, "exp"),
        # Checked by PyJWT; `_instant` also checks its type (a number, not a string).
        not_before=_instant(claims, "nbf"),
    )


def _instant(claims: dict[str, object], name: str) -> datetime:
    """A NumericDate claim as a datetime; JwtInvalidError unless it is a representable number.

    PyJWT accepts `"9999999999"` (it calls int() on it) and `1e30` (its comparisons work), but
    neither is a time Python can hold. Only reachable with the real key: a bug, not an attack.
    """
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwtInvalidError(f"{name} must be a number (RFC 7519 NumericDate)")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise JwtInvalidError(f"{name} is out of range") from None


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token.

    SHA-256 is enough (no salt, no Argon2): the token is 256 random bits, so there is nothing
    to guess, and an exact-match lookup needs a deterministic hash.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _lower_thread_priority(nice: int) -> None:
    """Renice the calling thread (Linux: threads are schedulable entities with their own nice)."""
    if nice <= 0:
        return
    # Not Linux, or not permitted: hashing still works, only without the politeness.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class PasswordHasher:
    """Argon2id through pwdlib, on a dedicated pool of N low-priority threads per process.

    - **Bounded**: the pool has `PASSWORD_HASH_CONCURRENCY` threads, so at most that many
      hashes run at once; each holds its memory cost (64 MiB) while it runs. Callers beyond
      the bound queue without blocking the event loop.
    - **Polite**: the threads run at a lower OS priority (`PASSWORD_HASH_NICE`), so when
      hashing and the event loop compete for a CPU, the loop — every other request — wins.
    - **Separate**: a pool of its own, so renicing never slows FastAPI's shared thread pool.
    - **Owned**: the app's lifespan creates one per process (`app.state.password_hasher`) and
      closes it at shutdown, like the engine and Redis; the CLI makes its own.
    """

    def __init__(self, settings: Settings) -> None:
        argon2id = Argon2Hasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_KIB,
            parallelism=settings.ARGON2_PARALLELISM,
        )
        self._hash = PasswordHash((argon2id,))
        self._pool = ThreadPoolExecutor(
            max_workers=settings.PASSWORD_HASH_CONCURRENCY,
            thread_name_prefix="argon2",
            initializer=_lower_thread_priority,
            initargs=(settings.PASSWORD_HASH_NICE,),
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        """Hash a new password."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hash.hash, password
        )

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check a password; also return a new hash when the stored parameters are outdated."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hash.verify_and_update, password, password_hash
        )

    async def warm_up(self) -> str:
        """Make (once) the dummy hash for unknown accounts; called at start-up so no login pays."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    async def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real verify, for an unknown account (no user enumeration)."""
        await self.verify(password, await self.warm_up())

    def close(self) -> None:
        """Stop the hashing threads once the hashes running now are done (lifespan shutdown)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
