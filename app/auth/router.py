"""HTTP endpoints of authentication: register, login, refresh, logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from app.auth import service as auth_service
from app.auth.dependencies import (
    LoginFormDep,
    limit_login,
    limit_register,
    remember_login_client,
)
from app.auth.schemas import RefreshRequest, TokenPair, UserCreate
from app.core.dependencies import PasswordHasherDep, SessionDep, SessionFactoryDep
from app.core.openapi import error_responses
from app.users.schemas import UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

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
    request: Request,
    response: Response,
) -> TokenPair:
    """Sign in with the OAuth2 password form (`username` = email): an access and a refresh token.

    Unknown email and wrong password get the same `invalid_credentials` answer in similar time.
    """
    response.headers.update(_NO_STORE)
    tokens = await auth_service.login(
        sessions, hasher=hasher, email=form.username, password=form.password
    )
    await remember_login_client(request, form)
    return tokens


@router.post("/refresh", operation_id="refresh_tokens", responses=error_responses(401, 422))
async def refresh_tokens(
    body: RefreshRequest, sessions: SessionFactoryDep, response: Response
) -> TokenPair:
    """Rotate a refresh token: the presented one is spent and a new pair is returned.

    Presenting an already-rotated token revokes every token of that login (`refresh_token_reused`).
    """
    response.headers.update(_NO_STORE)
    return await auth_service.refresh(sessions, refresh_token=body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="logout_user",
    responses=error_responses(422),
)
async def logout_user(body: RefreshRequest, session: SessionDep) -> None:
    """Revoke the refresh token's whole family (every token of that login). Idempotent."""
    await auth_service.logout(session, refresh_token=body.refresh_token)
