"""HTTP endpoints of the current user's profile and password, and the back office's users."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.auth import service as auth_service
from app.auth.dependencies import AdminUser, CurrentUser, PasswordCheckUser
from app.auth.schemas import PasswordChange
from app.core.dependencies import PasswordHasherDep, SessionDep, SessionFactoryDep
from app.core.openapi import error_responses
from app.users import service as users_service
from app.users.schemas import UserAdminRead, UserAdminUpdate, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])
admin_router = APIRouter(prefix="/admin/users", tags=["admin"])


@router.get("/me", operation_id="read_current_user", responses=error_responses(401))
async def read_current_user(user: CurrentUser, session: SessionDep) -> UserRead:
    """The signed-in user's profile."""
    return await users_service.get_user(session, user_id=user.id)


@router.patch("/me", operation_id="update_current_user", responses=error_responses(401, 422))
async def update_current_user(
    changes: UserUpdate, user: CurrentUser, session: SessionDep
) -> UserRead:
    """Change profile fields; only the fields sent are changed."""
    return await users_service.update_profile(session, user_id=user.id, changes=changes)


@router.post(
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
