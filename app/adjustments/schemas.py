"""Adjustments' request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.types import MAX_MINOR_UNITS, NonBlankText


class AdjustmentCreate(BaseModel):
    """Credit (amount > 0) or debit (amount < 0) an account, with the reason on record."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(
        ge=-MAX_MINOR_UNITS,
        le=MAX_MINOR_UNITS,
        strict=True,
        description="Signed minor units (a JSON integer), not zero.",
    )
    reason: NonBlankText = Field(min_length=1, max_length=500)

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be zero")
        return value


class AdjustmentRead(BaseModel):
    """A recorded adjustment."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    reason: str
    created_at: datetime
