"""Transient conflicts at the posting answer 503 and write nothing; verify names breaches."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Refusal
from app.ledger import service as ledger_service
from app.ledger.schemas import LedgerKind, Leg
from app.payments import repository as payments_repository
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
)


class FakeDeadlockError(Exception):
    sqlstate = "40P01"


async def test_a_deadlock_answers_503_writes_nothing_and_the_same_key_then_succeeds(
    client: AsyncClient, admin: SignedIn, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await signed_in_user(client)
    source = await open_account(client, user)
    destination = await open_account(client, user, name="other")
    await adjust(client, admin, source["id"], 100)
    real_create = payments_repository.create  # a payment posts in `payment_create`
    calls = 0

    async def deadlocked_once(*args: Any, **kwargs: Any) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DBAPIError("SELECT payment_create(...)", {}, FakeDeadlockError("deadlock"))
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(payments_repository, "create", deadlocked_once)
    headers = idempotency_headers(user)
    body = payment_body(source["id"], destination["id"], 40)
    first = await client.post("/api/v1/payments", json=body, headers=headers)
    assert first.status_code == 503, first.text
    assert first.json()["error"] == "service_unavailable"
    assert first.headers["Retry-After"] == "1"
    payments = await session.scalar(
        text("SELECT count(*) FROM payments WHERE source_account_id = :a"), {"a": source["id"]}
    )
    assert payments == 0  # rolled back whole: no payment, no idempotency record
    retried = await client.post("/api/v1/payments", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert calls == 2
    assert await ledger_service.verify_ledger(session) == []


async def test_another_database_error_stays_a_500(
    client: AsyncClient, admin: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await signed_in_user(client)
    source = await open_account(client, user)
    destination = await open_account(client, user, name="other")
    await adjust(client, admin, source["id"], 100)

    class FakeSyntaxError(Exception):
        sqlstate = "42601"

    async def broken(*args: Any, **kwargs: Any) -> object:
        raise DBAPIError("SELECT payment_create(...)", {}, FakeSyntaxError("syntax error"))

    monkeypatch.setattr(payments_repository, "create", broken)
    response = await client.post(
        "/api/v1/payments",
        json=payment_body(source["id"], destination["id"], 40),
        headers=idempotency_headers(user),
    )
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "syntax" not in response.text


async def test_a_refused_posting_is_a_value_and_writes_nothing(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    source = await open_account(client, user)
    destination = await open_account(client, user, name="other")
    posted = await ledger_service.post_transaction(
        session,
        kind=LedgerKind.PAYMENT,
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


async def test_verify_names_a_drifted_balance(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    await adjust(client, admin, account["id"], 250)
    assert await ledger_service.verify_ledger(session) == []
    await session.execute(
        text("UPDATE accounts SET balance = balance + 1 WHERE id = :id"), {"id": account["id"]}
    )
    assert await ledger_service.verify_ledger(session) == [
        f"account {account['id']} has balance 251 but its entries sum to 250"
    ]
