"""Accounts' request and response bodies, and the values other modules exchange with it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.config import get_settings
from app.core.pagination import Page
from app.core.types import MinorUnits, NonBlankText, Text


class AccountKind(StrEnum):
    """Whose an account is: a user's, or the system's (per currency, "the outside world")."""

    USER = "user"
    SYSTEM = "system"


class AccountCreate(BaseModel):
    """Open an account in one of the supported currencies."""

    model_config = ConfigDict(extra="forbid")

    currency: Text = Field(description="ISO 4217 code, one of SUPPORTED_CURRENCIES.")
    name: NonBlankText = Field(min_length=1, max_length=100)

    @field_validator("currency")
    @classmethod
    def _supported(cls, value: str) -> str:
        supported = get_settings().SUPPORTED_CURRENCIES
        if value not in supported:
            raise ValueError(f"must be one of {', '.join(supported)}")
        return value


class AccountRead(BaseModel):
    """An account as its owner sees it. `balance` is in minor units (cents)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    currency: str
    name: str
    balance: MinorUnits
    created_at: datetime


class AccountList(Page[AccountRead]):
    """A page of accounts."""


class AccountRef(BaseModel):
    """What another module needs to know about an account before posting to it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    user_id: uuid.UUID | None
    kind: AccountKind
    currency: str
