"""HTTP dependencies for routers: `CurrentUser` and `AdminUser`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from app.auth import service as auth_service
from app.auth.errors import ForbiddenError, NotAuthenticatedError
from app.core.db import SessionDep
from app.users.schemas import Principal

# auto_error=False: a missing header becomes our own 401 in the project's error shape.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def get_current_user(
    session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The active user behind the bearer token; 401 otherwise."""
    if not token:
        raise NotAuthenticatedError
    return await auth_service.authenticate(session, access_token=token)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def require_admin(user: CurrentUser) -> Principal:
    """The current user, if an admin; 403 `forbidden` otherwise."""
    if not user.is_admin:
        raise ForbiddenError("This action needs the admin role.")
    return user


AdminUser = Annotated[Principal, Depends(require_admin)]
