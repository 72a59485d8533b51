"""The ledger's response bodies, and the values other modules post with."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.core.pagination import Page
from app.core.types import MinorUnits


class LedgerKind(StrEnum):
    """Why money moved: the kind of a ledger transaction."""

    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    DEPOSIT = "deposit"


class Leg(BaseModel):
    """One side of a posting: a signed amount on one account."""

    model_config = ConfigDict(frozen=True)

    account_id: uuid.UUID
    amount: MinorUnits


class EntryRead(BaseModel):
    """One line of a statement: a signed amount (credit > 0, debit < 0)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    transaction_id: uuid.UUID
    kind: LedgerKind
    amount: MinorUnits
    created_at: datetime


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
