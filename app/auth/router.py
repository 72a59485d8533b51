"""HTTP endpoints of authentication: register, login, refresh, logout; and what ends sessions.

The password change (`/users/me/password`) and the back office's (de)activation of a user
(`/admin/users/{user_id}`) live here, beside the tokens they revoke; the users module keeps
the profile.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response, status

from app.auth import service as auth_service
from app.auth.dependencies import (
    AdminUser,
    LoginFormDep,
    PasswordCheckUser,
    limit_login,
    limit_register,
    remember_login_client,
)
from app.auth.schemas import PasswordChange, RefreshRequest, TokenPair, UserCreate
from app.core.dependencies import PasswordHasherDep, SessionDep, SessionFactoryDep, SettingsDep
from app.core.openapi import error_responses
from app.users import service as users_service
from app.users.schemas import UserAdminRead, UserAdminUpdate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])
me_router = APIRouter(prefix="/users", tags=["users"])
admin_router = APIRouter(prefix="/admin/users", tags=["admin"])

# RFC 6749 §5.1: responses carrying tokens must not be cached by anyone.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    operation_id="register_user",
    responses=error_responses(409, 422, 429),
    dependencies=[Depends(limit_register)],
)
async def register_user(
    data: UserCreate, session: SessionDep, hasher: PasswordHasherDep
) -> UserRead:
    """Create an account. The email is case-insensitive; the password must meet the policy."""
    return await auth_service.register(session, hasher=hasher, data=data)


@router.post(
    "/login",
    operation_id="login_user",
    responses=error_responses(401, 422, 429),
    dependencies=[Depends(limit_login)],
)
async def login_user(
    form: LoginFormDep,
    sessions: SessionFactoryDep,
    hasher: PasswordHasherDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> TokenPair:
    """Sign in with the OAuth2 password form (`username` = email): an access and a refresh token.

    Unknown email and wrong password get the same `invalid_credentials` answer in similar time.
    """
    response.headers.update(_NO_STORE)
    tokens = await auth_service.login(
        sessions, hasher=hasher, settings=settings, email=form.username, password=form.password
    )
    await remember_login_client(request, form, settings)
    return tokens


@router.post("/refresh", operation_id="refresh_tokens", responses=error_responses(401, 422))
async def refresh_tokens(
    body: RefreshRequest, sessions: SessionFactoryDep, settings: SettingsDep, response: Response
) -> TokenPair:
    """Rotate a refresh token: the presented one is spent and a new pair is returned.

    Presenting an already-rotated token revokes every token of that login (`refresh_token_reused`).
    """
    response.headers.update(_NO_STORE)
    return await auth_service.refresh(sessions, settings=settings, refresh_token=body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="logout_user",
    responses=error_responses(422),
)
async def logout_user(body: RefreshRequest, session: SessionDep) -> None:
    """Revoke the refresh token's whole family (every token of that login). Idempotent."""
    await auth_service.logout(session, refresh_token=body.refresh_token)


@me_router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="change_password",
    responses=error_responses(401, 422, 429),
)
async def change_password(
    body: PasswordChange,
    user: PasswordCheckUser,
    session: SessionDep,
    sessions: SessionFactoryDep,
    hasher: PasswordHasherDep,
) -> None:
    """Change the password. Every refresh token and every older access token stops working.

    The current password is checked at most `RATE_LIMIT_PASSWORD_CHECK` times per user, and
    counts against the account's budget of guesses like a login (`429 rate_limited`).
    """
    await auth_service.change_password(
        session,
        sessions=sessions,
        hasher=hasher,
        user_id=user.id,
        current_password=body.current_password,
        new_password=body.new_password,
    )


@admin_router.patch(
    "/{user_id}",
    operation_id="update_user",
    responses=error_responses(401, 403, 404, 422),
)
async def update_user(
    user_id: uuid.UUID, changes: UserAdminUpdate, admin: AdminUser, session: SessionDep
) -> UserAdminRead:
    """Deactivate or reactivate a user. Admin only; takes effect at once.

    Deactivation revokes the user's refresh tokens and refuses every access token issued
    before it. An admin cannot deactivate themselves.
    """
    await auth_service.set_user_active(
        session, admin_id=admin.id, user_id=user_id, is_active=changes.is_active
    )
    return await users_service.get_user_admin_view(session, user_id=user_id)
