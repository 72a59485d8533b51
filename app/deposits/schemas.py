"""Deposits' request and response bodies (SPEC §6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.payments.schemas import MAX_AMOUNT

DepositStatus = Literal["pending", "succeeded", "failed"]


class DepositCreate(BaseModel):
    """Top up one of your accounts with `amount` minor units from a card."""

    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID
    amount: int = Field(ge=1, le=MAX_AMOUNT, strict=True, description="Minor units (cents), ≥ 1.")
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
