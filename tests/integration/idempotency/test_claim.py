"""`idempotency_claim` reads the stored outcome in a snapshot taken after the lock is granted.

A plain statement takes its snapshot when it starts: an outcome committed while it waits
would be missed and the request run twice. The test makes the function's statement start,
sleep, and only then claim, while another transaction commits an outcome in between.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.idempotency import repository
from tests.factories import signed_in_user

ENDPOINT = "POST /api/v1/payments"
# The claim runs after the one-second sleep: LATERAL makes it depend on the sleep's row.
SLOW_CLAIM = text(
    "SELECT c.locked, c.record_id FROM pg_sleep(1) AS s, "
    "LATERAL idempotency_claim(:lock_name || s::text, :user_id, :endpoint, :key) AS c"
)


async def test_an_outcome_committed_while_the_claim_waits_is_seen(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user_id = uuid.UUID((await signed_in_user(live_http)).id)
    key = str(uuid.uuid4())

    async def slow_claim() -> tuple[bool, uuid.UUID | None]:
        async with sessions() as session, session.begin():
            row = (
                await session.execute(
                    SLOW_CLAIM,
                    {
                        "lock_name": f"test:{key}",
                        "user_id": user_id,
                        "endpoint": ENDPOINT,
                        "key": key,
                    },
                )
            ).one()
            return row.locked, row.record_id

    claiming = asyncio.create_task(slow_claim())
    await asyncio.sleep(0.2)  # the claim's statement has started, and its snapshot is taken
    async with sessions() as session, session.begin():
        await repository.add(
            session,
            user_id=user_id,
            endpoint=ENDPOINT,
            key=key,
            fingerprint="f" * 64,
            response_status=201,
            response_body=b"{}",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    assert not claiming.done()  # committed while the claim still waits
    locked, record_id = await claiming
    assert locked
    assert record_id is not None  # seen: read in a snapshot taken after the lock
