"""Back-office request and response bodies of the users module (the admin's view of a user)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.users.schemas import Role


class UserAdminRead(BaseModel):
    """A user as the back office sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool = Field(
        description="False once deactivated; an inactive user can neither sign in nor use tokens."
    )
    created_at: datetime
    updated_at: datetime


class UserAdminUpdate(BaseModel):
    """What the back office may change about a user."""

    model_config = ConfigDict(extra="forbid")

    # Strict: "no" or 0 is a client bug, not a deactivation.
    is_active: Annotated[bool, Field(strict=True)]
