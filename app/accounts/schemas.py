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


class LedgerKind(StrEnum):
    """Why money moved: the kind of a ledger transaction."""

    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    DEPOSIT = "deposit"


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


class EntryRead(BaseModel):
    """One line of a statement: a signed amount (credit > 0, debit < 0)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    transaction_id: uuid.UUID
    kind: LedgerKind
    amount: MinorUnits
    created_at: datetime


class AccountList(Page[AccountRead]):
    """A page of accounts."""


class EntryList(Page[EntryRead]):
    """A page of statement entries."""


class SummaryPeriod(BaseModel):
    """`from` (inclusive) and `to` (exclusive); either may be omitted (open-ended)."""

    start: datetime | None = None
    end: datetime | None = None


class AccountSummary(BaseModel):
    """Totals of an account's entries over a period, in minor units."""

    account_id: uuid.UUID
    currency: str
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    credits: MinorUnits = Field(description="Sum of incoming amounts (> 0).")
    debits: MinorUnits = Field(description="Sum of outgoing amounts, as a positive number.")
    net: MinorUnits = Field(description="credits - debits.")
    count: int = Field(description="Number of entries.")


class AccountRef(BaseModel):
    """What another module needs to know about an account before posting to it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    user_id: uuid.UUID | None
    kind: AccountKind
    currency: str


class Leg(BaseModel):
    """One side of a posting: a signed amount on one account."""

    model_config = ConfigDict(frozen=True)

    account_id: uuid.UUID
    amount: MinorUnits
