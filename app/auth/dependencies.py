"""HTTP dependencies for routers: `CurrentUser`, `AdminUser`, the login form and auth's limits.

Also `prefetch_principal`, which `create_app` hands the rate-limit middleware: it names the
cache entry `CurrentUser` will read, so the principal arrives with the rate-limit verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.types import Scope

from app.auth import service as auth_service
from app.auth.errors import ForbiddenError, NotAuthenticatedError
from app.auth.schemas import PASSWORD_MAX_LENGTH
from app.core.cache import Entry
from app.core.config import Settings
from app.core.dependencies import (
    CacheDep,
    SessionFactoryDep,
    SettingsDep,
    app_cache,
    app_settings,
    request_session,
)
from app.core.rate_limit import client_ip, enforce, get_rate_limiter
from app.core.types import Text
from app.users import service as users_service
from app.users.schemas import Principal

# The budget of password guesses per account, shared by every client not known to it (ADR 0014).
GUESS_BUDGET = "password-guesses"
_BUDGET_SPENT = (
    "Too many password attempts on this account from new devices. Use a device you have "
    "signed in with before, or retry after the time given in Retry-After."
)

# auto_error=False: a missing header becomes our own 401 in the project's error shape. The
# scheme's name and description are what Swagger UI's Authorize dialog shows a newcomer.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/login",
    scheme_name="SignInWithEmail",
    description="Your email as `username`, and your password; no client id or scope.",
    auto_error=False,
)


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The active user behind the bearer token; 401 otherwise.

    On every authenticated request: it takes the request's session, the cache and the settings
    from the request itself rather than as three more dependencies (issue 14).
    """
    if not token:
        raise NotAuthenticatedError
    return await auth_service.authenticate(
        request_session(request),
        settings=app_settings(request),
        access_token=token,
        cache=app_cache(request),
    )


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def bearer_user_id(scope: Scope) -> uuid.UUID | None:
    """The user this request's bearer token names, if the token is valid; None otherwise.

    Reads the header as `oauth2_scheme` does, before any dependency runs, for middleware that
    names the cache entries a request will read (ADR 0022). Anything that will be a 401 gives
    None: the dependency then answers it exactly as it would without the read ahead.
    """
    authorization = Headers(scope=scope).get("authorization")
    scheme, token = get_authorization_scheme_param(authorization)
    if not authorization or scheme.lower() != "bearer" or not token:
        return None
    # The app's settings straight from the app (SettingsDep's source).
    return auth_service.token_user_id(token, settings=scope["app"].state.settings)


def prefetch_principal(scope: Scope) -> list[Entry]:
    """The cache entry `CurrentUser` will read for this request's bearer token, if it is valid."""
    user_id = bearer_user_id(scope)
    return [users_service.principal_cache_entry(user_id)] if user_id is not None else []


async def get_current_user_own_session(
    sessions: SessionFactoryDep,
    cache: CacheDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The active user behind the bearer token, read in a short session closed at once.

    For endpoints that hash a password: `CurrentUser` reads through the request's session,
    whose connection would then stay checked out through the hash (ADR 0013).
    """
    if not token:
        raise NotAuthenticatedError
    async with sessions() as session:
        return await auth_service.authenticate(
            session, settings=settings, access_token=token, cache=cache
        )


CurrentUserOwnSession = Annotated[Principal, Depends(get_current_user_own_session)]


async def require_admin(user: CurrentUser) -> Principal:
    """The current user, if an admin; 403 `forbidden` otherwise."""
    if not user.is_admin:
        raise ForbiddenError("This action needs the admin role.")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]


# Our own form rather than FastAPI's `OAuth2PasswordRequestForm`, whose plain `str` fields let
# a NUL byte through to PostgreSQL (a 500): here every field is `Text`, and bounded. Unknown
# fields are ignored, as RFC 6749 §3.2 asks. (The docstring is the contract's description.)
class LoginForm(BaseModel):
    """The OAuth2 password grant form (RFC 6749 §4.3.2), as Swagger UI's Authorize sends it."""

    # An empty form field is an absent one (FastAPI reads `grant_type=` as unset), so the
    # contract admits "" too: what a client may send, not only what it should.
    grant_type: Annotated[str, Field(pattern="^(password)?$")] | None = None
    username: Text = Field(max_length=320, description="The account's email.")
    password: Text = Field(max_length=PASSWORD_MAX_LENGTH, json_schema_extra={"format": "password"})
    scope: Text = Field(default="", max_length=1024)
    client_id: Annotated[Text, Field(max_length=255)] | None = None
    client_secret: (
        Annotated[Text, Field(max_length=255, json_schema_extra={"format": "password"})] | None
    ) = None


async def read_login_form(form: Annotated[LoginForm, Form()]) -> LoginForm:
    """The login form, parsed once per request however many dependencies read it."""
    return form


LoginFormDep = Annotated[LoginForm, Depends(read_login_form)]


async def limit_login(request: Request, form: LoginFormDep, settings: SettingsDep) -> None:
    """Login's own limits, each counted before the password is hashed.

    Per client IP; per IP + account (slow guessing from one address); and the account's budget
    of guesses shared by every client not known to it (many addresses, ADR 0014). If Redis is
    down, all three fall back to per-process counters instead of failing open.
    """
    ip = client_ip(request.scope)
    account = _account_key(form.username)
    await enforce(request, limit=settings.RATE_LIMIT_LOGIN_PER_IP, name="login-ip", identity=ip)
    await enforce(
        request,
        limit=settings.RATE_LIMIT_LOGIN_PER_ACCOUNT,
        name="login-account",
        identity=f"{ip}:{account}",
    )
    await spend_guess_budget(request, settings=settings, account=account)


async def remember_login_client(request: Request, form: LoginForm, settings: Settings) -> None:
    """After a successful sign-in: this client is known to the account (LOGIN_KNOWN_CLIENT_DAYS).

    A known client is exempt from the account's shared budget, so strangers who spend it
    cannot lock the real user out of the devices they already use.
    """
    if not settings.RATE_LIMIT_ENABLED:
        return
    known = _client_key(_account_key(form.username), client_ip(request.scope), settings)
    await get_rate_limiter(request).exempt(
        GUESS_BUDGET, known, seconds=settings.LOGIN_KNOWN_CLIENT_DAYS * 86_400
    )


async def spend_guess_budget(request: Request, *, settings: Settings, account: str) -> None:
    """Count one password guess against the account's budget, unless this client is known.

    Counted before the hash, attempt by attempt: counting failures after it would let a burst
    of concurrent guesses all pass before the first failure is recorded (ADR 0014).
    """
    if not settings.RATE_LIMIT_ENABLED:
        return
    client = _client_key(account, client_ip(request.scope), settings)
    if await get_rate_limiter(request).is_exempt(GUESS_BUDGET, client):
        return
    await enforce(
        request,
        limit=settings.RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT,
        name=GUESS_BUDGET,
        identity=account,
        detail=_BUDGET_SPENT,
    )


async def limit_register(request: Request, settings: SettingsDep) -> None:
    """Registration's own limit, per client IP; a per-process limit while Redis is down.

    Fail closed like login: each registration costs an Argon2 hash, so an outage must not
    turn into unlimited hashing.
    """
    await enforce(
        request,
        limit=settings.RATE_LIMIT_REGISTER,
        name="register",
        identity=client_ip(request.scope),
    )


async def limit_password_check(
    request: Request,
    user: CurrentUserOwnSession,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> Principal:
    """The current user, once this current-password check is within its limits.

    A check is a password guess, so a stolen access token must not give more of them than
    login does: `RATE_LIMIT_PASSWORD_CHECK` per user (all addresses together), and the
    account's shared budget unless this client signed in to it before (ADR 0014). Counted
    before the hash; per-process fallbacks while Redis is down.
    """
    await enforce(
        request,
        limit=settings.RATE_LIMIT_PASSWORD_CHECK,
        name="password-check",
        identity=str(user.id),
    )
    if settings.RATE_LIMIT_ENABLED:
        async with sessions() as session:  # closed before the hash, like the principal's read
            profile = await users_service.get_user(session, user_id=user.id)
        await spend_guess_budget(request, settings=settings, account=_account_key(profile.email))
    return user


PasswordCheckUser = Annotated[Principal, Depends(limit_password_check)]


def _account_key(email: str) -> str:
    """An account in rate-limit keys: hashed, so no email address sits in Redis."""
    normalized = users_service.normalize_email(email)
    return hashlib.sha256(normalized.encode()).hexdigest()[:32]


def _client_key(account: str, ip: str, settings: Settings) -> str:
    """One client of one account, keyed with SECRET_KEY: kept for weeks, so not reversible."""
    secret = settings.SECRET_KEY.get_secret_value().encode()
    return hmac.new(secret, f"{account}:{ip}".encode(), hashlib.sha256).hexdigest()[:32]
