"""Values exchanged between the idempotency dependency, its service and routers."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict


class IdempotentRequest(BaseModel):
    """Who sent which key to which endpoint, and the fingerprint of what they sent."""

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID
    endpoint: str
    key: str
    fingerprint: str
    request_id: str | None


class IdempotentOutcome(BaseModel):
    """The response to send: fresh, or replayed from the stored outcome."""

    status_code: int
    body: dict[str, Any]
    replayed: bool
