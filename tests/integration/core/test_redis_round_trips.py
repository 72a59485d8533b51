"""One Redis round trip before the handler: the rate limit and the caller's principal together.

Round trips are counted where every one of them starts: a connection checked out of the app's
pool (the rate limiter, the cache and, before ADR 0022, `limits`' storage all share it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import take_stale
from app.core.config import get_settings
from app.users import service as users_service
from tests.assertions import recorded_statements
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
)
from tests.integration.conftest import http_client, started_app
from tests.metrics import cache_reads, cache_reads_since

ME = "/api/v1/users/me"
_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


@contextmanager
def redis_round_trips(app: FastAPI) -> Iterator[list[list[str]]]:
    """The commands of every round trip the app makes to Redis while the block runs."""
    pool = app.state.redis.connection_pool
    checkout = pool.get_connection
    trips: list[list[str]] = []
    spied: list[Any] = []

    async def counted(*args: Any, **kwargs: Any) -> Any:
        connection = await checkout(*args, **kwargs)
        trip: list[str] = []
        trips.append(trip)
        send = type(connection).send_packed_command

        async def recorded(command: Any, *more: Any, **options: Any) -> Any:
            packed = command if isinstance(command, bytes) else b"".join(command)
            trip.extend(name.decode().upper() for name in _COMMAND.findall(packed))
            return await send(connection, command, *more, **options)

        connection.send_packed_command = recorded
        spied.append(connection)
        return connection

    pool.get_connection = counted
    try:
        yield trips
    finally:
        del pool.get_connection
        for connection in spied:
            connection.__dict__.pop("send_packed_command", None)


async def warm(client: AsyncClient, user: SignedIn, url: str) -> None:
    """The token verified and remembered, the scripts loaded, the entries cached."""
    for _ in range(2):
        assert (await client.get(url, headers=user.headers)).status_code == 200


async def test_users_me_makes_one_round_trip(app: FastAPI, client: AsyncClient) -> None:
    user = await signed_in_user(client)
    await warm(client, user, ME)
    before = cache_reads()
    with redis_round_trips(app) as trips:
        response = await client.get(ME, headers=user.headers)
    assert response.status_code == 200
    assert trips == [["EVALSHA"]]  # the rate limit, with the principal read ahead
    assert cache_reads_since(before) == {("user", "hit"): 1}


async def test_a_cached_account_read_makes_one(app: FastAPI, client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    url = f"/api/v1/accounts/{account['id']}"
    await warm(client, user, url)
    before = cache_reads()
    with redis_round_trips(app) as trips:
        response = await client.get(url, headers=user.headers)
    assert response.json() == account
    assert trips == [["EVALSHA"]]  # the rate limit, with the principal and the account
    assert cache_reads_since(before) == {("user", "hit"): 1, ("account", "hit"): 1}


async def test_another_users_account_read_ahead_is_still_not_found(
    app: FastAPI, client: AsyncClient
) -> None:
    owner, stranger = await signed_in_user(client), await signed_in_user(client)
    account = await open_account(client, owner)
    url = f"/api/v1/accounts/{account['id']}"
    await warm(client, owner, url)  # the owner's read cached the account
    await warm(client, stranger, ME)  # and the stranger's principal is cached
    before = cache_reads()
    with redis_round_trips(app) as trips:
        response = await client.get(url, headers=stranger.headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert trips == [["EVALSHA"]]
    # Both read ahead, and refused all the same.
    assert cache_reads_since(before) == {("user", "hit"): 1, ("account", "hit"): 1}


async def test_a_posting_is_seen_by_the_next_account_read_ahead(
    app: FastAPI, client: AsyncClient, admin: SignedIn
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    url = f"/api/v1/accounts/{account['id']}"
    await warm(client, user, url)
    credited = await client.post(
        f"/api/v1/admin/accounts/{account['id']}/adjustments",
        json={"amount": 250, "reason": "read-ahead check"},
        headers={**admin.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert credited.status_code == 201, credited.text
    read = await client.get(url, headers=user.headers)
    assert read.json()["balance"] == 250  # the new generation was read ahead: never stale


async def test_a_payment_makes_two(app: FastAPI, client: AsyncClient, admin: SignedIn) -> None:
    user = await signed_in_user(client)
    source, destination = await open_account(client, user), await open_account(client, user)
    await adjust(client, admin, source["id"], 1_000)
    await warm(client, user, ME)
    with redis_round_trips(app) as trips:
        paid = await client.post(
            "/api/v1/payments",
            json=payment_body(source["id"], destination["id"], 100),
            headers=idempotency_headers(user),
        )
    assert paid.status_code == 201, paid.text
    # The rate limit with the principal; then one script moves both accounts' generations.
    assert trips == [["EVALSHA"], ["EVALSHA"]]


async def test_an_invalid_token_reads_nothing_ahead_and_is_refused_as_before(
    app: FastAPI, client: AsyncClient
) -> None:
    user = await signed_in_user(client)
    await warm(client, user, ME)
    forged = user.access_token.rsplit(".", 1)[0] + ".forged-signature"
    before = cache_reads()
    with redis_round_trips(app) as trips:
        response = await client.get(ME, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert trips == [["EVALSHA"]]
    assert cache_reads_since(before) == {}


async def test_a_deactivation_is_seen_by_the_next_read_ahead(
    app: FastAPI, client: AsyncClient, admin: SignedIn
) -> None:
    user = await signed_in_user(client)
    await warm(client, user, ME)  # the principal is cached and read ahead
    deactivated = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200
    before = cache_reads()
    with redis_round_trips(app) as trips:
        response = await client.get(ME, headers=user.headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    # Read ahead at the new generation: a miss, loaded from the database, not the old entry.
    assert trips[0] == ["EVALSHA"]
    assert cache_reads_since(before) == {("user", "miss"): 1}


async def test_a_role_change_committed_elsewhere_is_seen_by_the_next_read_ahead(
    live_app: FastAPI,
    live_http: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Real commits: the promotion commits in a transaction of its own and bumps the scope."""
    user, other = await signed_in_user(live_http), await signed_in_user(live_http)
    url = f"/api/v1/admin/users/{other.id}"
    await warm(live_http, user, ME)
    with redis_round_trips(live_app) as trips:
        forbidden = await live_http.patch(url, json={"is_active": True}, headers=user.headers)
    assert forbidden.status_code == 403
    assert trips == [["EVALSHA"]]  # the principal (role "user") came with the rate limit
    async with sessions() as session, session.begin():
        await users_service.promote_to_admin(session, user_id=uuid.UUID(user.id))
        stale = take_stale(session)  # as the request's session dependency does
    await live_app.state.invalidator.after_commit(stale)
    before = cache_reads()
    with redis_round_trips(live_app) as trips:
        allowed = await live_http.patch(url, json={"is_active": True}, headers=user.headers)
    assert allowed.status_code == 200, allowed.text
    # Read ahead at the new generation: a miss, loaded from the database as an admin.
    assert trips[0] == ["EVALSHA"]
    assert cache_reads_since(before) == {("user", "miss"): 1}


@pytest.fixture
async def small_limit_app(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    monkeypatch.setenv("RATE_LIMIT_DEFAULT", "4/minute")
    get_settings.cache_clear()
    async with started_app() as application:
        yield application


async def test_a_refused_request_is_refused_before_auth_and_reads_nothing(
    small_limit_app: FastAPI,
) -> None:
    app = small_limit_app
    async with http_client(app) as http:
        user = await signed_in_user(http)  # register and login: 2 of the 4
        await warm(http, user, ME)  # 4 of 4
        before = cache_reads()
        with (
            recorded_statements(app.state.engine, containing="FROM users") as users_queries,
            redis_round_trips(app) as trips,
        ):
            refused = await http.get(ME, headers=user.headers)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert trips == [["EVALSHA"]]
    assert cache_reads_since(before) == {}
    assert users_queries == []  # not authenticated at all
