"""An outcome is kept for the app's IDEMPOTENCY_KEY_TTL_SECONDS, read from the app's settings."""

from __future__ import annotations

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import idempotency_headers, open_account, payment_body, signed_in_user
from tests.integration.conftest import settings_changed

_KEPT_FOR = text(
    "SELECT EXTRACT(EPOCH FROM expires_at - created_at) FROM idempotency_keys WHERE key = :k"
)

_KEPT_FOR = text(
    "SELECT EXTRACT(EPOCH FROM expires_at - created_at) FROM idempotency_keys WHERE key = :k"
)


async def test_an_outcome_expires_after_the_apps_ttl(
    app: FastAPI, client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    source, destination = await open_account(client, user), await open_account(client, user)
    headers = idempotency_headers(user)
    # The environment says otherwise: only the app's own settings may be read.
    with settings_changed(app, IDEMPOTENCY_KEY_TTL_SECONDS=4_321):
        refused = await client.post(
            "/api/v1/payments",
            json=payment_body(source["id"], destination["id"], 5),
            headers=headers,
        )
    assert refused.status_code == 409  # an empty account: a refusal, stored like a success
    kept_for = await session.scalar(_KEPT_FOR, {"k": headers["Idempotency-Key"]})
    assert kept_for is not None
    assert 4_320 <= float(kept_for) <= 4_322
