"""Deposits through the API (SPEC §6): 202 pending, idempotent, the owner's only, and its task
recorded in the same transaction (the outbox)."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import TaskOutboxEntry
from tests.factories import idempotency_headers, open_account, signed_in_user

DEPOSITS = "/api/v1/deposits"


async def test_a_deposit_is_accepted_pending_and_its_task_is_recorded_with_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    body = {"account_id": account["id"], "amount": 5000, "currency": "EUR"}
    response = await client.post(DEPOSITS, json=body, headers=idempotency_headers(user))
    assert response.status_code == 202, response.text
    deposit = response.json()
    assert deposit["status"] == "pending"
    assert deposit["failure_code"] is None
    assert (deposit["account_id"], deposit["amount"], deposit["currency"]) == (
        account["id"],
        5000,
        "EUR",
    )
    tasks = await session.scalar(
        select(func.count())
        .select_from(TaskOutboxEntry)
        .where(TaskOutboxEntry.arguments.contains(deposit["id"]))
    )
    assert tasks == 1
    read = await client.get(f"{DEPOSITS}/{deposit['id']}", headers=user.headers)
    assert read.status_code == 200
    assert read.json() == deposit


async def test_the_same_key_replays_and_records_nothing_twice(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    headers = idempotency_headers(user)
    body = {"account_id": account["id"], "amount": 5000, "currency": "EUR"}
    first = await client.post(DEPOSITS, json=body, headers=headers)
    again = await client.post(DEPOSITS, json=body, headers=headers)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    tasks = await session.scalar(
        select(func.count())
        .select_from(TaskOutboxEntry)
        .where(TaskOutboxEntry.arguments.contains(first.json()["id"]))
    )
    assert tasks == 1
    other_body = await client.post(DEPOSITS, json={**body, "amount": 6000}, headers=headers)
    assert other_body.status_code == 422
    assert other_body.json()["error"] == "idempotency_key_reused"


async def test_refusals_in_the_error_shape(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    missing_key = await client.post(
        DEPOSITS,
        json={"account_id": account["id"], "amount": 1, "currency": "EUR"},
        headers=user.headers,
    )
    assert missing_key.json()["error"] == "idempotency_key_missing"
    wrong_currency = await client.post(
        DEPOSITS,
        json={"account_id": account["id"], "amount": 100, "currency": "USD"},
        headers=idempotency_headers(user),
    )
    assert (wrong_currency.status_code, wrong_currency.json()["error"]) == (
        422,
        "currency_mismatch",
    )
    for amount in (0, -5, 1.5, "100"):
        invalid = await client.post(
            DEPOSITS,
            json={"account_id": account["id"], "amount": amount, "currency": "EUR"},
            headers=idempotency_headers(user),
        )
        assert (invalid.status_code, invalid.json()["error"]) == (422, "validation_error"), amount


async def test_another_users_account_and_deposit_are_not_found(client: AsyncClient) -> None:
    owner = await signed_in_user(client)
    stranger = await signed_in_user(client)
    account = await open_account(client, owner)
    body = {"account_id": account["id"], "amount": 100, "currency": "EUR"}
    into_theirs = await client.post(DEPOSITS, json=body, headers=idempotency_headers(stranger))
    assert (into_theirs.status_code, into_theirs.json()["error"]) == (404, "not_found")
    deposit = (await client.post(DEPOSITS, json=body, headers=idempotency_headers(owner))).json()
    theirs = await client.get(f"{DEPOSITS}/{deposit['id']}", headers=stranger.headers)
    assert (theirs.status_code, theirs.json()["error"]) == (404, "not_found")
    unknown = await client.get(f"{DEPOSITS}/{uuid.uuid4()}", headers=owner.headers)
    assert unknown.status_code == 404
