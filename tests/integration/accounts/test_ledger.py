"""The posting primitive retries PostgreSQL's transient failures; `ledger verify` sees breaches."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts import service as accounts_service
from app.accounts.schemas import Leg
from app.core.errors import Refusal
from tests.factories import SignedIn, adjust, open_account, signed_in_user


class FakeDeadlockError(Exception):
    sqlstate = "40P01"


async def test_a_deadlock_is_retried_then_the_posting_succeeds(
    client: AsyncClient, admin: SignedIn, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await signed_in_user(client)
    source = await open_account(client, user)
    destination = await open_account(client, user, name="other")
    await adjust(client, admin, source["id"], 100)
    real_lock = repository.lock_accounts
    calls = 0

    async def flaky_lock(session: AsyncSession, ids: list[uuid.UUID]) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DBAPIError("SELECT ... FOR UPDATE", {}, FakeDeadlockError("deadlock detected"))
        return await real_lock(session, ids)

    monkeypatch.setattr(repository, "lock_accounts", flaky_lock)
    await accounts_service.post_transaction(
        session,
        kind="payment",
        legs=[
            Leg(account_id=uuid.UUID(str(source["id"])), amount=-40),
            Leg(account_id=uuid.UUID(str(destination["id"])), amount=40),
        ],
    )
    assert calls == 2
    assert await accounts_service.verify_ledger(session) == []


async def test_a_refused_posting_is_a_value_and_writes_nothing(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    source = await open_account(client, user)
    destination = await open_account(client, user, name="other")
    posted = await accounts_service.post_transaction(
        session,
        kind="payment",
        legs=[
            Leg(account_id=uuid.UUID(str(source["id"])), amount=-1),
            Leg(account_id=uuid.UUID(str(destination["id"])), amount=1),
        ],
    )
    assert isinstance(posted, Refusal)
    assert posted.error.code == "insufficient_funds"
    entries = await session.scalar(
        text("SELECT count(*) FROM ledger_entries WHERE account_id IN (:a, :b)"),
        {"a": source["id"], "b": destination["id"]},
    )
    assert entries == 0


async def test_retries_are_bounded(session: AsyncSession, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def always_deadlocked(session: AsyncSession, ids: list[uuid.UUID]) -> object:
        nonlocal calls
        calls += 1
        raise DBAPIError("SELECT ... FOR UPDATE", {}, FakeDeadlockError("deadlock detected"))

    monkeypatch.setattr(repository, "lock_accounts", always_deadlocked)
    with pytest.raises(DBAPIError):
        await accounts_service.post_transaction(
            session,
            kind="payment",
            legs=[Leg(account_id=uuid.uuid4(), amount=-1), Leg(account_id=uuid.uuid4(), amount=1)],
        )
    assert calls == 3  # LEDGER_RETRY_ATTEMPTS


async def test_verify_names_a_drifted_balance(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    await adjust(client, admin, account["id"], 250)
    assert await accounts_service.verify_ledger(session) == []
    await session.execute(
        text("UPDATE accounts SET balance = balance + 1 WHERE id = :id"), {"id": account["id"]}
    )
    assert await accounts_service.verify_ledger(session) == [
        f"account {account['id']} has balance 251 but its entries sum to 250"
    ]
