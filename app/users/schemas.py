"""Users' request and response bodies, and the plain values other modules receive."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.types import NonBlankText


class Role(StrEnum):
    """What a user may do: their own money (`user`), or the back office too (`admin`)."""

    USER = "user"
    ADMIN = "admin"


class UserRead(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    created_at: datetime


class UserUpdate(BaseModel):
    """Profile fields a user may change (email changes need verification: not offered)."""

    model_config = ConfigDict(extra="forbid")

    # Omitted means "unchanged"; null is refused, as the contract says (no null in its schema).
    # The length constraints sit on the `str` alone: on the union they crash on null (a 500).
    full_name: (
        Annotated[NonBlankText, Field(min_length=1, max_length=200)] | SkipJsonSchema[None]
    ) = None

    @field_validator("full_name", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be a string; omit the field to leave it unchanged")
        return value


class Principal(BaseModel):
    """The authenticated caller, as other modules see it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    role: Role
    is_active: bool
    password_changed_at: datetime

    @property
    def is_admin(self) -> bool:
        """True for back-office users."""
        return self.role == Role.ADMIN


class UserCredentials(BaseModel):
    """What the auth module needs to check a password (stays server-side)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    email: str
    password_hash: str
    is_active: bool


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
