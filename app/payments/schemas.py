"""Payments' request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from app.core.pagination import Page
from app.core.types import MAX_MINOR_UNITS, Rfc3339, Text


class PaymentStatus(StrEnum):
    """A payment either moved the money or was refused (its `failure_code` says why)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PaymentCreate(BaseModel):
    """Transfer `amount` minor units from one of your accounts to any account."""

    model_config = ConfigDict(extra="forbid")

    source_account_id: uuid.UUID
    destination_account_id: uuid.UUID
    # strict: a JSON integer only — "100" or 100.0 is refused rather than coerced.
    amount: int = Field(
        gt=0, le=MAX_MINOR_UNITS, strict=True, description="Minor units (cents), > 0."
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="Must be both accounts' currency.")
    description: Text = Field(default="", max_length=500)


class PaymentRead(BaseModel):
    """A payment as its owner sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: PaymentStatus
    amount: int
    currency: str
    source_account_id: uuid.UUID
    destination_account_id: uuid.UUID
    description: str
    failure_code: str | None = Field(
        description="Why a failed payment failed, e.g. insufficient_funds."
    )
    created_at: datetime


class PaymentList(Page[PaymentRead]):
    """A page of payments."""


class PaymentFilters(BaseModel):
    """Optional filters of the payment list."""

    status: PaymentStatus | SkipJsonSchema[None] = None
    account_id: uuid.UUID | SkipJsonSchema[None] = Field(
        default=None, description="Payments from or to this account."
    )
    created_after: Rfc3339 | SkipJsonSchema[None] = Field(
        default=None, description="Created at or after this instant (RFC 3339)."
    )
    created_before: Rfc3339 | SkipJsonSchema[None] = Field(
        default=None, description="Created before this instant (RFC 3339)."
    )
