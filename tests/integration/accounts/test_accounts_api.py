"""Accounts: open, list, read, statement — and never another user's."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from tests.factories import SignedIn, adjust, open_account, signed_in_user

ACCOUNTS = "/api/v1/accounts"


async def test_open_then_read_an_account(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    created = await open_account(client, user, currency="USD", name="  Travel  ")
    assert set(created) == {"id", "currency", "name", "balance", "created_at"}
    assert created["currency"] == "USD"
    assert created["name"] == "Travel"
    assert created["balance"] == 0
    read = await client.get(f"{ACCOUNTS}/{created['id']}", headers=user.headers)
    assert read.status_code == 200
    assert read.json() == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "XXX", "name": "a"}, "body.currency"),
        ({"currency": "eur", "name": "a"}, "body.currency"),
        ({"currency": "EUR", "name": ""}, "body.name"),
        ({"currency": "EUR", "name": "   "}, "body.name"),
        ({"currency": "EUR", "name": "x" * 101}, "body.name"),
        ({"currency": "EUR", "name": "a", "balance": 100}, "body.balance"),
    ],
)
async def test_invalid_accounts_are_refused(
    client: AsyncClient, body: dict[str, object], field: str
) -> None:
    user = await signed_in_user(client)
    response = await client.post(ACCOUNTS, json=body, headers=user.headers)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [field]


async def test_another_users_account_is_404_everywhere(client: AsyncClient) -> None:
    owner = await signed_in_user(client)
    stranger = await signed_in_user(client)
    account = await open_account(client, owner)
    for path in (f"{ACCOUNTS}/{account['id']}", f"{ACCOUNTS}/{account['id']}/entries"):
        theirs = await client.get(path, headers=stranger.headers)
        missing = await client.get(
            path.replace(str(account["id"]), str(uuid.uuid4())), headers=stranger.headers
        )
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"] == "not_found"
        assert theirs.json()["detail"] == missing.json()["detail"]


async def test_malformed_account_id_is_422(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    response = await client.get(f"{ACCOUNTS}/not-a-uuid", headers=user.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "path.account_id"


async def test_accounts_need_a_token(client: AsyncClient) -> None:
    assert (await client.get(ACCOUNTS)).json()["error"] == "not_authenticated"


async def test_list_pages_through_every_account_once(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    opened = [await open_account(client, user, name=f"n{i}") for i in range(5)]
    seen: list[object] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(ACCOUNTS, params=params, headers=user.headers)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Every account exactly once. (Their order is newest first by created_at, then id; in this
    # test all five share one transaction, hence one timestamp.)
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == {a["id"] for a in opened}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"cursor": "eyJjcmVhdGVkX2F0IjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJpZCI6IjEifQ"},
        {"cursor": "x" * 600},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
    ],
)
async def test_bad_paging_parameters_are_422(
    client: AsyncClient, params: dict[str, str | int]
) -> None:
    user = await signed_in_user(client)
    response = await client.get(ACCOUNTS, params=params, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_a_cursor_edited_by_the_client_is_refused(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    for i in range(3):
        await open_account(client, user, name=f"n{i}")
    page = (await client.get(ACCOUNTS, params={"limit": 1}, headers=user.headers)).json()
    cursor = page["next_cursor"]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    response = await client.get(ACCOUNTS, params={"cursor": tampered}, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "query.cursor", "message": "Invalid cursor.", "type": "cursor"}
    ]


async def test_statement_lists_entries_newest_first(client: AsyncClient, admin: SignedIn) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    await adjust(client, admin, account["id"], 1_000)
    await adjust(client, admin, account["id"], -300)
    statement = (
        await client.get(f"{ACCOUNTS}/{account['id']}/entries", headers=user.headers)
    ).json()
    assert sorted((e["amount"], e["kind"]) for e in statement["items"]) == [
        (-300, "adjustment"),
        (1_000, "adjustment"),
    ]
    assert statement["next_cursor"] is None
    balance = (await client.get(f"{ACCOUNTS}/{account['id']}", headers=user.headers)).json()
    assert balance["balance"] == 700
