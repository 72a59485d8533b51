"""Values exchanged between the idempotency dependency, its service and routers."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import BaseModel, ConfigDict


class IdempotentRequest(BaseModel):
    """Who sent which key to which endpoint, and the fingerprint of what they sent.

    `kept_for`: how long the outcome is kept for replays (`IDEMPOTENCY_KEY_TTL_SECONDS`).
    """

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID
    endpoint: str
    key: str
    fingerprint: str
    request_id: str | None
    kept_for: timedelta


class IdempotentOutcome(BaseModel):
    """The response to send: fresh, or replayed from the stored outcome.

    `body` is the rendered JSON, stored and replayed as these very bytes.
    """

    status_code: int
    body: bytes
    replayed: bool
