"""HTTP dependencies for routers: `CurrentUser` and `AdminUser`."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

from app.auth import service as auth_service
from app.auth.errors import ForbiddenError, NotAuthenticatedError
from app.core.cache import CacheDep
from app.core.config import get_settings
from app.core.db import SessionDep
from app.core.rate_limit import client_ip, enforce
from app.users.schemas import Principal

# auto_error=False: a missing header becomes our own 401 in the project's error shape.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def get_current_user(
    session: SessionDep, cache: CacheDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The active user behind the bearer token; 401 otherwise."""
    if not token:
        raise NotAuthenticatedError
    return await auth_service.authenticate(session, access_token=token, cache=cache)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def require_admin(user: CurrentUser) -> Principal:
    """The current user, if an admin; 403 `forbidden` otherwise."""
    if not user.is_admin:
        raise ForbiddenError("This action needs the admin role.")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]


async def limit_login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> None:
    """Login's own limits: per client IP, and per IP + account (stops slow password guessing).

    If Redis is down these fall back to per-process counters instead of failing open.
    """
    settings = get_settings()
    ip = client_ip(request.scope)
    account = hashlib.sha256(form.username.strip().lower().encode()).hexdigest()[:32]
    await enforce(request, limit=settings.RATE_LIMIT_LOGIN_PER_IP, name="login-ip", identity=ip)
    await enforce(
        request,
        limit=settings.RATE_LIMIT_LOGIN_PER_ACCOUNT,
        name="login-account",
        identity=f"{ip}:{account}",  # hashed: no email addresses in Redis keys
    )


async def limit_register(request: Request) -> None:
    """Registration's own limit, per client IP; a per-process limit while Redis is down.

    Fail closed like login: each registration costs an Argon2 hash, so an outage must not
    turn into unlimited hashing.
    """
    await enforce(
        request,
        limit=get_settings().RATE_LIMIT_REGISTER,
        name="register",
        identity=client_ip(request.scope),
    )
