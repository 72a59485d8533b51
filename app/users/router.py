"""HTTP endpoints of the current user's profile.

The password change and the back office's deactivation end sessions: they are auth's
(`app/auth/router.py`). This router needs auth only to know who is calling.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep
from app.core.openapi import error_responses
from app.users import service as users_service
from app.users.schemas import UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


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
