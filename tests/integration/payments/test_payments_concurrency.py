"""Money under real concurrency: real commits on a real pool, several requests at once.

These tests do not use the rolled-back session: every request commits, as in production.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.idempotency.models import IdempotencyKey
from app.ledger import service as ledger_service
from app.payments.models import Payment
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
)

PAYMENTS = "/api/v1/payments"


async def balances(
    live_http: AsyncClient, owner: SignedIn, accounts: list[dict[str, object]]
) -> list[int]:
    return [
        (await live_http.get(f"/api/v1/accounts/{a['id']}", headers=owner.headers)).json()[
            "balance"
        ]
        for a in accounts
    ]


async def test_fifty_identical_requests_make_exactly_one_payment(
    live_http: AsyncClient, live_admin: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    payer = await signed_in_user(live_http)
    payee = await signed_in_user(live_http)
    source = await open_account(live_http, payer)
    destination = await open_account(live_http, payee)
    await adjust(live_http, live_admin, source["id"], 10_000)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 1_234)

    responses = await asyncio.gather(
        *(live_http.post(PAYMENTS, json=body, headers=headers) for _ in range(50))
    )

    outcomes = Counter(
        "replayed"
        if r.headers.get("idempotent-replayed") == "true"
        else "in_progress"
        if r.status_code == 409
        else "executed"
        if r.status_code == 201
        else f"unexpected {r.status_code}"
        for r in responses
    )
    assert outcomes["executed"] == 1, outcomes
    assert set(outcomes) <= {"executed", "replayed", "in_progress"}, outcomes
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"] == "idempotency_key_in_progress"
    payment_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(payment_ids) == 1
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.source_account_id == source["id"])
        )
    assert stored == 1
    assert await balances(live_http, payer, [source]) == [10_000 - 1_234]


async def test_fifty_identical_refused_requests_store_one_refusal(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A raised refusal is recorded after a rollback, under the lock again: still only once."""
    payer = await signed_in_user(live_http)
    source = await open_account(live_http, payer)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], uuid.uuid4(), 1_234)  # no such destination: 404

    responses = await asyncio.gather(
        *(live_http.post(PAYMENTS, json=body, headers=headers) for _ in range(50))
    )

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {404, 409}, statuses
    refusals = [r for r in responses if r.status_code == 404]
    assert sum(r.headers.get("idempotent-replayed") != "true" for r in refusals) == 1
    assert len({r.content for r in refusals}) == 1  # every replay is the first answer's bytes
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.key == headers["Idempotency-Key"])
        )
    assert stored == 1


async def test_a_bank_run_of_random_transfers_creates_and_loses_nothing(
    live_http: AsyncClient, live_admin: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    owners = [await signed_in_user(live_http) for _ in range(3)]
    accounts = [(owner, await open_account(live_http, owner)) for owner in owners for _ in range(2)]
    for _, account in accounts:
        await adjust(live_http, live_admin, account["id"], 1_000)
    total_before = 1_000 * len(accounts)
    rng = random.Random(20261127)
    transfers = []
    for _ in range(240):
        (owner, source), (_, destination) = rng.sample(accounts, 2)
        transfers.append((owner, source, destination, rng.randint(1, 400)))
    limiter = asyncio.Semaphore(24)

    async def transfer(
        owner: SignedIn, source: dict[str, object], destination: dict[str, object], amount: int
    ) -> int:
        async with limiter:
            response = await live_http.post(
                PAYMENTS,
                json=payment_body(source["id"], destination["id"], amount),
                headers=idempotency_headers(owner),
            )
            return response.status_code

    statuses = Counter(await asyncio.gather(*(transfer(*t) for t in transfers)))
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] > 0

    after = [
        (await live_http.get(f"/api/v1/accounts/{a['id']}", headers=o.headers)).json()["balance"]
        for o, a in accounts
    ]
    assert sum(after) == total_before
    assert min(after) >= 0
    async with sessions() as session:
        assert await ledger_service.verify_ledger(session) == []
        succeeded = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(
                Payment.source_account_id.in_([a["id"] for _, a in accounts]),
                Payment.status == "succeeded",
            )
        )
    assert succeeded == statuses[201]


@pytest.fixture
def fail_next_commit(live_app: FastAPI) -> Iterator[Callable[[], None]]:
    armed: list[bool] = []

    def maybe_fail(_: Connection) -> None:
        if armed:
            armed.clear()
            raise RuntimeError("the database went away during COMMIT")

    engine = live_app.state.engine.sync_engine
    event.listen(engine, "commit", maybe_fail)
    yield lambda: armed.append(True)
    event.remove(engine, "commit", maybe_fail)


async def test_a_payment_whose_commit_fails_leaves_no_trace_and_is_not_replayed(
    live_http: AsyncClient,
    live_admin: SignedIn,
    sessions: async_sessionmaker[AsyncSession],
    fail_next_commit: Callable[[], None],
) -> None:
    payer = await signed_in_user(live_http)
    source = await open_account(live_http, payer)
    destination = await open_account(live_http, await signed_in_user(live_http))
    await adjust(live_http, live_admin, source["id"], 5_000)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 800)

    fail_next_commit()
    failed = await live_http.post(PAYMENTS, json=body, headers=headers)
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.source_account_id == source["id"])
            )
            == 0
        )
        assert (
            await session.scalar(
                select(func.count())
                .select_from(IdempotencyKey)
                .where(IdempotencyKey.key == headers["Idempotency-Key"])
            )
            == 0
        )
    assert await balances(live_http, payer, [source]) == [5_000]

    retry = await live_http.post(PAYMENTS, json=body, headers=headers)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert await balances(live_http, payer, [source]) == [4_200]


async def test_the_database_refuses_an_unbalanced_transaction_at_commit(
    sessions: async_sessionmaker[AsyncSession], live_http: AsyncClient
) -> None:
    owner = await signed_in_user(live_http)
    account = await open_account(live_http, owner)
    insert_entry = text(
        "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, 5)"
    )
    async with sessions() as session:
        transaction = await session.begin()
        tx = await session.scalar(
            text("INSERT INTO ledger_transactions (kind) VALUES ('adjustment') RETURNING id")
        )
        await session.execute(insert_entry, {"t": tx, "a": account["id"]})  # accepted for now...
        with pytest.raises(IntegrityError, match="unbalanced"):
            await transaction.commit()  # ...refused at COMMIT by the deferred trigger
    assert await balances(live_http, owner, [account]) == [0]
