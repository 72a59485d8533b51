"""Admin adjustments: admin only, idempotent, balanced against the system account."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from tests.factories import SignedIn, idempotency_headers, open_account, signed_in_user


def url(account_id: object) -> str:
    return f"/api/v1/admin/accounts/{account_id}/adjustments"


async def test_credit_and_debit_move_money_against_the_system_account(
    client: AsyncClient, admin: SignedIn, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user, currency="GBP")
    system_before = await session.scalar(
        select(Account.balance).where(Account.kind == "system", Account.currency == "GBP")
    )
    credit = await client.post(
        url(account["id"]),
        json={"amount": 5_000, "reason": " Goodwill "},
        headers=idempotency_headers(admin),
    )
    assert credit.status_code == 201
    body = credit.json()
    assert set(body) == {"id", "account_id", "amount", "reason", "created_at"}
    assert body["amount"] == 5_000
    assert body["reason"] == "Goodwill"
    debit = await client.post(
        url(account["id"]),
        json={"amount": -1_500, "reason": "Fee"},
        headers=idempotency_headers(admin),
    )
    assert debit.status_code == 201
    balance = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert balance["balance"] == 3_500
    system_after = await session.scalar(
        select(Account.balance).where(Account.kind == "system", Account.currency == "GBP")
    )
    assert (system_after or 0) - (system_before or 0) == -3_500


async def test_a_debit_beyond_the_balance_is_insufficient_funds(
    client: AsyncClient, admin: SignedIn
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    response = await client.post(
        url(account["id"]), json={"amount": -1, "reason": "x"}, headers=idempotency_headers(admin)
    )
    assert response.status_code == 409
    assert response.json()["error"] == "insufficient_funds"


async def test_users_get_403_and_anonymous_401(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    forbidden = await client.post(
        url(account["id"]), json={"amount": 100, "reason": "x"}, headers=idempotency_headers(user)
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden"
    anonymous = await client.post(url(account["id"]), json={"amount": 100, "reason": "x"})
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "reason": "x"},
        {"amount": 1, "reason": "  "},
        {"amount": 1},
        {"amount": 1.5, "reason": "x"},
    ],
)
async def test_invalid_adjustments_are_422(
    client: AsyncClient, admin: SignedIn, body: dict[str, object]
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    response = await client.post(url(account["id"]), json=body, headers=idempotency_headers(admin))
    assert response.status_code == 422


async def test_unknown_account_is_404(client: AsyncClient, admin: SignedIn) -> None:
    response = await client.post(
        url(uuid.uuid4()), json={"amount": 1, "reason": "x"}, headers=idempotency_headers(admin)
    )
    assert response.status_code == 404


async def test_a_retried_adjustment_is_applied_once(client: AsyncClient, admin: SignedIn) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    headers = idempotency_headers(admin)
    first = await client.post(
        url(account["id"]), json={"amount": 700, "reason": "x"}, headers=headers
    )
    again = await client.post(
        url(account["id"]), json={"amount": 700, "reason": "x"}, headers=headers
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other_account = await open_account(client, user, name="other")
    reused = await client.post(
        url(other_account["id"]), json={"amount": 700, "reason": "x"}, headers=headers
    )
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
    balance = (await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)).json()
    assert balance["balance"] == 700
