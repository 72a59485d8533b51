"""Deposits' request and response bodies (SPEC §6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.types import MAX_MINOR_UNITS, Text


class DepositStatus(StrEnum):
    """Pending until the provider answers; then succeeded (credited) or failed, for good."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DepositCreate(BaseModel):
    """Top up one of your accounts with `amount` minor units from a card."""

    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID
    amount: int = Field(
        ge=1, le=MAX_MINOR_UNITS, strict=True, description="Minor units (cents), ≥ 1."
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="Must be the account's currency.")


class DepositRead(BaseModel):
    """A deposit as its owner sees it; `pending` until the provider has answered."""

    id: uuid.UUID
    status: DepositStatus
    account_id: uuid.UUID
    amount: int
    currency: str
    failure_code: str | None = Field(description="Why a failed deposit failed, e.g. card_declined.")
    created_at: datetime
    updated_at: datetime


class ChargeRequest(BaseModel):
    """What the provider is asked to charge for one pending deposit."""

    model_config = ConfigDict(frozen=True)

    deposit_id: uuid.UUID
    amount: int
    currency: str


class WebhookData(BaseModel):
    """What a provider event is about."""

    deposit_id: uuid.UUID
    failure_code: Text | None = Field(
        default=None, min_length=1, max_length=64, description="Why, on `charge.failed` only."
    )


class WebhookEvent(BaseModel):
    """A provider event (SPEC §6).

    Fields the provider adds later are ignored, not refused: a refusal would only make it
    redeliver the same event for days.
    """

    id: Text = Field(min_length=1, max_length=255, description="The provider's event id.")
    type: Literal["charge.succeeded", "charge.failed"]
    data: WebhookData

    @model_validator(mode="after")
    def _failure_has_a_code(self) -> WebhookEvent:
        """A failed charge says why."""
        if self.type == "charge.failed" and self.data.failure_code is None:
            raise ValueError("data.failure_code is required for charge.failed")
        return self


class WebhookReceived(BaseModel):
    """The answer to every accepted event, a duplicate included."""

    received: Literal[True]
