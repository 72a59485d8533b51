"""The payment list's first pages, cached per owner (ADR 0035): fresh after every payment.

A test's payments share its transaction's `now()`: the list orders them by id, so amounts are
compared as sets where a test made several.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.payments.dependencies import plain_page_limit
from tests.assertions import recorded_statements
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
)
from tests.integration.core.test_redis_round_trips import redis_round_trips, warm
from tests.metrics import cache_reads, cache_reads_since

PAYMENTS = "/api/v1/payments"


async def pay(
    client: AsyncClient, user: SignedIn, source: str, destination: str, amount: int
) -> Response:
    return await client.post(
        PAYMENTS,
        json=payment_body(source, destination, amount),
        headers=idempotency_headers(user),
    )


async def payer_with_accounts(
    client: AsyncClient, admin: SignedIn, balance: int
) -> tuple[SignedIn, str, str]:
    user = await signed_in_user(client)
    source, destination = await open_account(client, user), await open_account(client, user)
    await adjust(client, admin, source["id"], balance)
    return user, str(source["id"]), str(destination["id"])


@pytest.mark.parametrize("query", ["", "?limit=20", "?limit=020"])
async def test_a_cached_first_page_makes_one_round_trip_and_no_query(
    app: FastAPI, client: AsyncClient, admin: SignedIn, query: str
) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 1_000)
    assert (await pay(client, user, source, destination, 100)).status_code == 201
    url = PAYMENTS + query
    await warm(client, user, url)
    before = cache_reads()
    with (
        recorded_statements(app.state.engine, containing="payments") as queries,
        redis_round_trips(app) as trips,
    ):
        response = await client.get(url, headers=user.headers)
    assert response.status_code == 200
    assert [item["amount"] for item in response.json()["items"]] == [100]
    assert trips == [["EVALSHA"]]  # the rate limit, with the principal and the page
    assert cache_reads_since(before) == {("user", "hit"): 1, ("payments", "hit"): 1}
    assert queries == []


async def test_a_payment_shows_in_the_next_list_read(client: AsyncClient, admin: SignedIn) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 1_000)
    assert (await pay(client, user, source, destination, 100)).status_code == 201
    await warm(client, user, PAYMENTS)
    assert (await pay(client, user, source, destination, 250)).status_code == 201
    listed = (await client.get(PAYMENTS, headers=user.headers)).json()
    assert sorted(item["amount"] for item in listed["items"]) == [100, 250]


async def test_a_refused_payment_shows_at_once_as_failed(
    client: AsyncClient, admin: SignedIn
) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 100)
    failed_url = f"{PAYMENTS}?status=failed"
    await warm(client, user, PAYMENTS)
    await warm(client, user, failed_url)
    refused = await pay(client, user, source, destination, 5_000)
    assert refused.status_code == 409
    assert refused.json()["error"] == "insufficient_funds"
    listed = (await client.get(PAYMENTS, headers=user.headers)).json()["items"]
    assert [(item["amount"], item["status"]) for item in listed] == [(5_000, "failed")]
    failed = (await client.get(failed_url, headers=user.headers)).json()["items"]
    assert [item["failure_code"] for item in failed] == ["insufficient_funds"]


async def test_each_page_size_is_an_entry_of_its_own(
    app: FastAPI, client: AsyncClient, admin: SignedIn
) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 1_000)
    for amount in (100, 150, 175):
        await pay(client, user, source, destination, amount)
    for limit in (1, 2, 3):
        url = f"{PAYMENTS}?limit={limit}"
        await warm(client, user, url)
        before = cache_reads()
        with recorded_statements(app.state.engine, containing="payments") as statements:
            page = (await client.get(url, headers=user.headers)).json()
        assert len(page["items"]) == limit
        assert (page["next_cursor"] is None) == (limit == 3)
        assert cache_reads_since(before) == {("user", "hit"): 1, ("payments", "hit"): 1}
        assert statements == []


async def test_filtered_lists_and_later_pages_come_from_the_database(
    app: FastAPI, client: AsyncClient, admin: SignedIn
) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 300)
    other = str((await open_account(client, user))["id"])
    await pay(client, user, source, destination, 100)
    await pay(client, user, source, other, 150)
    await pay(client, user, source, destination, 5_000)  # refused
    every = (await client.get(f"{PAYMENTS}?limit=3", headers=user.headers)).json()["items"]
    first = (await client.get(f"{PAYMENTS}?limit=1", headers=user.headers)).json()
    queries = {
        f"{PAYMENTS}?status=succeeded": [100, 150],
        f"{PAYMENTS}?status=failed": [5_000],
        f"{PAYMENTS}?account_id={other}": [150],
        f"{PAYMENTS}?account_id={destination}": [100, 5_000],
        f"{PAYMENTS}?limit=1&cursor={first['next_cursor']}": [every[1]["amount"]],
        f"{PAYMENTS}?created_after=2000-01-01T00:00:00Z": [100, 150, 5_000],
        f"{PAYMENTS}?created_before=2000-01-01T00:00:00Z": [],
    }
    for url, expected in queries.items():
        for _ in range(2):  # and again: nothing was cached by the first read
            before = cache_reads()
            with recorded_statements(app.state.engine, containing="payments") as statements:
                response = await client.get(url, headers=user.headers)
            amounts = sorted(item["amount"] for item in response.json()["items"])
            assert amounts == expected, url
            assert cache_reads_since(before) == {("user", "hit"): 1}, url
            assert len(statements) == 1, url


async def test_a_refused_payment_moves_the_list_on_in_the_bump_script(
    app: FastAPI, client: AsyncClient, admin: SignedIn
) -> None:
    user, source, destination = await payer_with_accounts(client, admin, 100)
    await warm(client, user, PAYMENTS)
    with redis_round_trips(app) as trips:
        refused = await pay(client, user, source, destination, 5_000)
    assert refused.status_code == 409
    # The rate limit with the principal; then the list's generation (no account changed).
    assert trips == [["EVALSHA"], ["EVALSHA"]]


async def test_no_one_is_served_another_owners_page(client: AsyncClient, admin: SignedIn) -> None:
    alice, a_source, a_destination = await payer_with_accounts(client, admin, 1_000)
    bob, b_source, b_destination = await payer_with_accounts(client, admin, 1_000)
    await pay(client, alice, a_source, a_destination, 111)
    await pay(client, bob, b_source, b_destination, 222)
    for _ in range(2):  # loaded, then served from the cache
        for user, amount in ((alice, 111), (bob, 222)):
            listed = (await client.get(PAYMENTS, headers=user.headers)).json()["items"]
            assert [item["amount"] for item in listed] == [amount]


def test_a_plain_first_page_is_read_ahead() -> None:
    assert plain_page_limit(b"") == DEFAULT_PAGE_SIZE
    assert plain_page_limit(b"limit=20") == 20
    assert plain_page_limit(f"limit={MAX_PAGE_SIZE}".encode()) == MAX_PAGE_SIZE


@pytest.mark.parametrize(
    "query",
    [
        b"limit=0",
        f"limit={MAX_PAGE_SIZE + 1}".encode(),
        b"limit=",
        b"limit=-1",
        b"limit=1e2",
        b"limit=20&status=failed",
        b"status=failed",
        b"cursor=abc",
        b"limit=10000000000000000000000",
        b"limit=5&limit=7",
        b"limit=%32%30",
        b"limit=+20",
        b"limit=20&",
    ],
)
def test_any_other_query_is_not_read_ahead(query: bytes) -> None:
    assert plain_page_limit(query) is None
