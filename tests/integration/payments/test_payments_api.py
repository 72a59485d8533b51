"""Payments through the API: the happy path, every error in the error shape, idempotency,
filters and pagination without N+1 queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.accounts import service as accounts_service
from app.idempotency.models import IdempotencyKey
from app.ledger.models import LedgerEntry
from app.payments.models import Payment
from tests.assertions import recorded_statements
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
)

PAYMENTS = "/api/v1/payments"


async def funded_pair(
    client: AsyncClient, admin: SignedIn, amount: int = 10_000, currency: str = "EUR"
) -> tuple[SignedIn, dict[str, object], dict[str, object]]:
    payer = await signed_in_user(client)
    payee = await signed_in_user(client)
    source = await open_account(client, payer, currency=currency)
    destination = await open_account(client, payee, currency=currency)
    await adjust(client, admin, source["id"], amount)
    return payer, source, destination


async def balance(client: AsyncClient, user: SignedIn, account: dict[str, object]) -> int:
    response = await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)
    value: int = response.json()["balance"]
    return value


async def test_a_payment_moves_money_and_is_readable(client: AsyncClient, admin: SignedIn) -> None:
    payer, source, destination = await funded_pair(client, admin)
    response = await client.post(
        PAYMENTS,
        json=payment_body(source["id"], destination["id"], 2_500),
        headers=idempotency_headers(payer),
    )
    assert response.status_code == 201
    payment = response.json()
    assert payment["status"] == "succeeded"
    assert payment["amount"] == 2_500
    assert payment["currency"] == "EUR"
    assert payment["failure_code"] is None
    assert "idempotent-replayed" not in response.headers
    assert await balance(client, payer, source) == 7_500
    read = await client.get(f"{PAYMENTS}/{payment['id']}", headers=payer.headers)
    assert read.json() == payment


async def test_insufficient_funds_is_409_and_records_a_failed_payment(
    client: AsyncClient, admin: SignedIn
) -> None:
    payer, source, destination = await funded_pair(client, admin, amount=100)
    response = await client.post(
        PAYMENTS,
        json=payment_body(source["id"], destination["id"], 101),
        headers=idempotency_headers(payer),
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "insufficient_funds"
    assert await balance(client, payer, source) == 100
    listed = (await client.get(PAYMENTS, params={"status": "failed"}, headers=payer.headers)).json()
    assert [(p["status"], p["failure_code"], p["amount"]) for p in listed["items"]] == [
        ("failed", "insufficient_funds", 101)
    ]


async def test_business_errors_are_in_the_error_shape(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    payer, source, destination = await funded_pair(client, admin)
    usd = await open_account(client, payer, currency="USD")
    stranger = await signed_in_user(client)
    strangers_account = await open_account(client, stranger)
    system = await accounts_service.system_account_id(session, currency="EUR")
    no_source, no_destination = "No such source account.", "No such destination account."
    cases = [
        (payment_body(source["id"], source["id"], 1), 422, "same_account", None),
        (payment_body(source["id"], usd["id"], 1), 422, "currency_mismatch", None),
        (payment_body(source["id"], destination["id"], 1, "USD"), 422, "currency_mismatch", None),
        (payment_body(strangers_account["id"], destination["id"], 1), 404, "not_found", no_source),
        (payment_body(uuid.uuid4(), destination["id"], 1), 404, "not_found", no_source),
        (payment_body(system, destination["id"], 1), 404, "not_found", no_source),
        (payment_body(source["id"], uuid.uuid4(), 1), 404, "not_found", no_destination),
        (payment_body(source["id"], system, 1), 404, "not_found", no_destination),
    ]
    for body, status, code, detail in cases:
        response = await client.post(PAYMENTS, json=body, headers=idempotency_headers(payer))
        assert (response.status_code, response.json()["error"]) == (status, code), body
        assert response.headers["content-type"] == "application/problem+json"
        if detail is not None:
            assert response.json()["detail"] == detail, body
    assert await balance(client, payer, source) == 10_000
    # Refused before any posting: no payment is recorded (a refused posting is, as failed).
    written = await session.scalar(
        select(func.count()).select_from(Payment).where(Payment.owner_id == uuid.UUID(payer.id))
    )
    assert written == 0


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": 1.5},
        {"amount": "100"},
        {"amount": 10**16},
        {"currency": "eur"},
        {"description": "x" * 501},
        {"source_account_id": "nope"},
        {"unexpected": True},
    ],
)
async def test_schema_failures_are_422_and_not_stored(
    client: AsyncClient, admin: SignedIn, change: dict[str, object], session: AsyncSession
) -> None:
    payer, source, destination = await funded_pair(client, admin)
    headers = idempotency_headers(payer)
    body = {**payment_body(source["id"], destination["id"], 10), **change}
    response = await client.post(PAYMENTS, json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    stored = await session.scalar(
        select(func.count())
        .select_from(IdempotencyKey)
        .where(IdempotencyKey.key == headers["Idempotency-Key"])
    )
    assert stored == 0
    # The key is still free: the corrected request goes through with it.
    fixed = await client.post(
        PAYMENTS, json=payment_body(source["id"], destination["id"], 10), headers=headers
    )
    assert fixed.status_code == 201


async def test_the_idempotency_key_is_required_and_checked(
    client: AsyncClient, admin: SignedIn
) -> None:
    payer, source, destination = await funded_pair(client, admin)
    body = payment_body(source["id"], destination["id"], 10)
    missing = await client.post(PAYMENTS, json=body, headers=payer.headers)
    assert (missing.status_code, missing.json()["error"]) == (400, "idempotency_key_missing")
    for bad in ("", "has space", "x" * 256, "ключ"):
        headers = [(k.encode(), v.encode()) for k, v in payer.headers.items()]
        response = await client.post(
            PAYMENTS, json=body, headers=[*headers, (b"Idempotency-Key", bad.encode())]
        )
        assert (response.status_code, response.json()["error"]) == (400, "idempotency_key_invalid")
    assert await balance(client, payer, source) == 10_000


async def test_a_retry_replays_the_first_response_and_pays_once(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    payer, source, destination = await funded_pair(client, admin)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 1_000)
    first = await client.post(PAYMENTS, json=body, headers=headers)
    # Same JSON, other spacing and key order: the same request.
    reordered = {k: body[k] for k in reversed(list(body))}
    replay = await client.post(PAYMENTS, json=reordered, headers=headers)
    assert replay.status_code == 201
    assert replay.content == first.content  # byte for byte, key order included
    assert replay.headers["idempotent-replayed"] == "true"
    assert await balance(client, payer, source) == 9_000
    payments = await session.scalar(
        select(func.count()).select_from(Payment).where(Payment.source_account_id == source["id"])
    )
    assert payments == 1


async def test_a_replayed_business_error_is_the_stored_one(
    client: AsyncClient, admin: SignedIn
) -> None:
    payer, source, destination = await funded_pair(client, admin, amount=50)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 60)
    first = await client.post(PAYMENTS, json=body, headers=headers)
    await adjust(client, admin, source["id"], 1_000)  # now it would succeed...
    replay = await client.post(PAYMENTS, json=body, headers=headers)
    assert replay.status_code == 409  # ...but the outcome of this key is settled
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-type"] == "application/problem+json"


async def test_the_same_key_with_another_body_is_422(client: AsyncClient, admin: SignedIn) -> None:
    payer, source, destination = await funded_pair(client, admin)
    headers = idempotency_headers(payer)
    await client.post(
        PAYMENTS, json=payment_body(source["id"], destination["id"], 10), headers=headers
    )
    other = await client.post(
        PAYMENTS, json=payment_body(source["id"], destination["id"], 11), headers=headers
    )
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")
    assert await balance(client, payer, source) == 9_990


async def test_keys_are_scoped_per_user(client: AsyncClient, admin: SignedIn) -> None:
    alice, alice_source, destination = await funded_pair(client, admin)
    bob, bob_source, _ = await funded_pair(client, admin)
    key = str(uuid.uuid4())
    a = await client.post(
        PAYMENTS,
        json=payment_body(alice_source["id"], destination["id"], 5),
        headers=idempotency_headers(alice, key),
    )
    b = await client.post(
        PAYMENTS,
        json=payment_body(bob_source["id"], destination["id"], 5),
        headers=idempotency_headers(bob, key),
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_an_expired_key_is_forgotten(
    client: AsyncClient, admin: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.idempotency import service as idempotency_service

    payer, source, destination = await funded_pair(client, admin)
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 10)
    await client.post(PAYMENTS, json=body, headers=headers)
    later = datetime.now(UTC) + timedelta(days=2)

    class Later(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return later

    monkeypatch.setattr(idempotency_service, "datetime", Later)
    again = await client.post(PAYMENTS, json=body, headers=headers)
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert await balance(client, payer, source) == 9_980


async def test_another_users_payment_is_404(client: AsyncClient, admin: SignedIn) -> None:
    payer, source, destination = await funded_pair(client, admin)
    paid = await client.post(
        PAYMENTS,
        json=payment_body(source["id"], destination["id"], 10),
        headers=idempotency_headers(payer),
    )
    stranger = await signed_in_user(client)
    theirs = await client.get(f"{PAYMENTS}/{paid.json()['id']}", headers=stranger.headers)
    assert (theirs.status_code, theirs.json()["error"]) == (404, "not_found")


@pytest.fixture
def count_statements(app: FastAPI, db_connection: AsyncConnection) -> Iterator[list[str]]:
    """The statements the test's requests run: on the test's own connection only."""
    with recorded_statements(app.state.engine, on=db_connection) as statements:
        yield statements


async def test_listing_payments_costs_the_same_queries_for_1_or_20_rows(
    client: AsyncClient, admin: SignedIn, count_statements: list[str]
) -> None:
    payer, source, destination = await funded_pair(client, admin, amount=1_000_000)
    usd_payee = await signed_in_user(client)
    usd_source = await open_account(client, payer, currency="USD")
    usd_destination = await open_account(client, usd_payee, currency="USD")
    await adjust(client, admin, usd_source["id"], 1_000)
    for amount in range(1, 21):
        await client.post(
            PAYMENTS,
            json=payment_body(source["id"], destination["id"], amount),
            headers=idempotency_headers(payer),
        )
    await client.post(
        PAYMENTS,
        json=payment_body(usd_source["id"], usd_destination["id"], 7, "USD"),
        headers=idempotency_headers(payer),
    )

    def selects() -> int:
        return len([s for s in count_statements if s.lstrip().upper().startswith("SELECT")])

    count_statements.clear()
    one = await client.get(PAYMENTS, params={"limit": 1}, headers=payer.headers)
    small = selects()
    count_statements.clear()
    many = await client.get(PAYMENTS, params={"limit": 21}, headers=payer.headers)
    large = selects()
    assert len(one.json()["items"]) == 1
    assert len(many.json()["items"]) == 21
    assert {p["currency"] for p in many.json()["items"]} == {"EUR", "USD"}
    assert small > 0  # the counter sees the requests' statements at all
    assert small == large  # no query per row (no N+1)


async def test_filters_and_pages(client: AsyncClient, admin: SignedIn) -> None:
    payer, source, destination = await funded_pair(client, admin, amount=100)
    other_destination = await open_account(client, await signed_in_user(client))
    for target, amount in ((destination, 10), (other_destination, 20), (destination, 500)):
        await client.post(
            PAYMENTS,
            json=payment_body(source["id"], target["id"], amount),
            headers=idempotency_headers(payer),
        )

    async def amounts(**params: str) -> list[int]:
        body = (await client.get(PAYMENTS, params=params, headers=payer.headers)).json()
        return sorted(p["amount"] for p in body["items"])

    assert await amounts() == [10, 20, 500]
    assert await amounts(status="succeeded") == [10, 20]
    assert await amounts(status="failed") == [500]
    assert await amounts(account_id=str(other_destination["id"])) == [20]
    assert await amounts(created_after="2000-01-01T00:00:00Z") == [10, 20, 500]
    assert await amounts(created_before="2000-01-01T00:00:00Z") == []
    bad = await client.get(PAYMENTS, params={"status": "pending"}, headers=payer.headers)
    assert bad.status_code == 422
    for when in ("yesterday", "0.5", "1700000000"):  # a number is not an RFC 3339 date-time
        bad_date = await client.get(PAYMENTS, params={"created_after": when}, headers=payer.headers)
        assert bad_date.status_code == 422
    page = (await client.get(PAYMENTS, params={"limit": 2}, headers=payer.headers)).json()
    rest = (
        await client.get(
            PAYMENTS, params={"limit": 2, "cursor": page["next_cursor"]}, headers=payer.headers
        )
    ).json()
    assert len(page["items"]) == 2
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_every_entry_is_append_only(
    session: AsyncSession, client: AsyncClient, admin: SignedIn
) -> None:
    _, source, _ = await funded_pair(client, admin)
    entry = await session.scalar(select(LedgerEntry).where(LedgerEntry.account_id == source["id"]))
    assert entry is not None
    entry.amount = 1
    with pytest.raises(Exception, match="append-only"):
        await session.flush()


async def test_expired_keys_are_deleted_by_the_clean_up(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.idempotency import service as idempotency_service

    payer, source, destination = await funded_pair(client, admin)
    headers = idempotency_headers(payer)
    await client.post(
        PAYMENTS, json=payment_body(source["id"], destination["id"], 10), headers=headers
    )
    key = IdempotencyKey.key == headers["Idempotency-Key"]
    now = datetime.now(UTC)
    await idempotency_service.delete_expired_keys(session, now=now, limit=1_000)  # kept: fresh
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey).where(key)) == 1
    later = now + timedelta(days=2)
    assert await idempotency_service.delete_expired_keys(session, now=later, limit=1_000) >= 1
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey).where(key)) == 0


async def test_a_payment_is_three_statements_a_refused_one_too(
    client: AsyncClient, admin: SignedIn, count_statements: list[str]
) -> None:
    # The key's claim, the payment (checks, posting and row: `payment_create`), the stored
    # outcome. Each round trip is the largest single cost of a payment (issue 14).
    payer, source, destination = await funded_pair(client, admin, amount=100)
    expected = ["idempotency_claim(", "payment_create(", "INSERT INTO idempotency_keys"]
    for amount, status in ((60, 201), (60, 409)):
        count_statements.clear()
        response = await client.post(
            PAYMENTS,
            json=payment_body(source["id"], destination["id"], amount),
            headers=idempotency_headers(payer),
        )
        assert response.status_code == status
        # The request's BEGIN and COMMIT are a savepoint and its release inside the test's
        # transaction.
        framing = [s for s in count_statements if "SAVEPOINT" in s]
        work = [s for s in count_statements if "SAVEPOINT" not in s]
        assert [s.split()[0] for s in framing] == ["SAVEPOINT", "RELEASE"], count_statements
        assert len(work) == len(expected), work
        for statement, text in zip(work, expected, strict=True):
            assert text in statement
