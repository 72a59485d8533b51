"""run_once with operations that write and then raise: the refusal is kept, the writes are not."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import status
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.accounts.models import Account
from app.accounts.schemas import AccountCreate, AccountRead
from app.core.errors import NotFoundError
from app.idempotency import service as idempotency_service
from app.idempotency.schemas import IdempotentRequest
from tests.factories import SignedIn, signed_in_user


def request_for(user: SignedIn, key: str, fingerprint: str = "f" * 64) -> IdempotentRequest:
    return IdempotentRequest(
        user_id=uuid.UUID(user.id),
        endpoint="POST /test/things",
        key=key,
        fingerprint=fingerprint,
        request_id="test",
        kept_for=timedelta(hours=1),
    )


async def accounts_of(session: AsyncSession, user: SignedIn) -> int:
    query = select(func.count()).select_from(Account).where(Account.user_id == uuid.UUID(user.id))
    return int(await session.scalar(query) or 0)


async def test_a_refusal_raised_after_a_write_is_stored_without_the_write(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    runs = 0

    async def open_then_refuse() -> AccountRead:
        nonlocal runs
        runs += 1
        await accounts_service.open_account(
            session, user_id=uuid.UUID(user.id), data=AccountCreate(currency="EUR", name="x")
        )
        await session.flush()
        raise NotFoundError("No such thing.")

    first = await idempotency_service.run_once(
        session,
        request=request_for(user, "k-1"),
        operation=open_then_refuse,
        success_status=status.HTTP_201_CREATED,
    )
    assert (first.status_code, first.replayed) == (404, False)
    assert await accounts_of(session, user) == 0  # the write went with the refusal

    again = await idempotency_service.run_once(
        session,
        request=request_for(user, "k-1"),
        operation=open_then_refuse,
        success_status=status.HTTP_201_CREATED,
    )
    assert (again.status_code, again.body, again.replayed) == (404, first.body, True)
    assert runs == 1  # replayed, not run again
