"""An outcome is kept for the app's IDEMPOTENCY_KEY_TTL_SECONDS, read from the app's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import idempotency_headers, open_account, payment_body, signed_in_user
from tests.integration.conftest import settings_changed

# The outcome's expiry, from the app's clock at the request. Not against `created_at`: that is
# the database's now(), the start of the test's enclosing transaction, before the set-up ran.
_EXPIRES_AT = text("SELECT expires_at FROM idempotency_keys WHERE key = :k")


async def test_an_outcome_expires_after_the_apps_ttl(
    app: FastAPI, client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    source, destination = await open_account(client, user), await open_account(client, user)
    headers = idempotency_headers(user)
    # The environment says otherwise: only the app's own settings may be read.
    with settings_changed(app, IDEMPOTENCY_KEY_TTL_SECONDS=4_321):
        before = datetime.now(UTC)
        refused = await client.post(
            "/api/v1/payments",
            json=payment_body(source["id"], destination["id"], 5),
            headers=headers,
        )
        after = datetime.now(UTC)
    assert refused.status_code == 409  # an empty account: a refusal, stored like a success
    expires_at = await session.scalar(_EXPIRES_AT, {"k": headers["Idempotency-Key"]})
    assert expires_at is not None
    kept_for = timedelta(seconds=4_321)
    assert before + kept_for <= expires_at <= after + kept_for
