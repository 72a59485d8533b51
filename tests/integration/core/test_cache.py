"""The cache: used, single-flight on a cold key, never stale after a write, fail-open.

What happens when Redis misses an invalidation: test_cache_outage.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError

from app.core.cache import NAMESPACE, Cache, mark_stale
from app.core.config import get_settings
from app.core.dependencies import SessionDep
from app.core.redis import RedisBreaker
from tests.assertions import recorded_statements
from tests.conftest import TEST_REDIS_URL
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


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    yield client
    await client.aclose()


async def test_concurrent_misses_on_a_cold_key_load_once(redis: Redis) -> None:
    cache = Cache(redis, ttl_seconds=60)
    loads = 0

    async def load() -> dict[str, object]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.3)  # long enough for all 20 misses to join it, on a busy machine
        return {"value": 42}

    scope = f"test:{id(cache)}"
    results = await asyncio.gather(*(cache.get_or_load(scope, "cold", load) for _ in range(20)))
    assert results == [{"value": 42}] * 20
    assert loads == 1
    assert await cache.get_or_load(scope, "cold", load) == {"value": 42}
    assert loads == 1  # now a hit
    keys = [key.decode() async for key in redis.scan_iter(f"{NAMESPACE}:{scope}:*")]
    assert keys == [f"{NAMESPACE}:{scope}:cold:g0"]  # namespaced and versioned
    await cache.bump(scope)
    assert await cache.get_or_load(scope, "cold", load) == {"value": 42}
    assert loads == 2  # a new generation: the old entry is unreachable


async def test_a_failing_loader_is_not_cached_and_reaches_every_waiter(redis: Redis) -> None:
    cache = Cache(redis, ttl_seconds=60)

    async def broken() -> dict[str, object]:
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(cache.get_or_load("test:broken", "x", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    # Nothing was cached for the key: the next read loads again, and gets the real value.
    loads = 0

    async def working() -> dict[str, object]:
        nonlocal loads
        loads += 1
        return {"value": "from the database"}

    assert await cache.get_or_load("test:broken", "x", working) == {"value": "from the database"}
    assert loads == 1


async def test_redis_down_means_the_database_answers(migrated_database: str) -> None:
    cache = Cache(Redis.from_url("redis://127.0.0.1:1/0"), ttl_seconds=60)

    async def load() -> dict[str, object]:
        return {"from": "db"}

    assert await cache.get_or_load("test:down", "x", load) == {"from": "db"}
    await cache.bump("test:down")  # logged, not raised
    assert cache.errors == 2


async def test_an_open_breaker_skips_redis_entirely(migrated_database: str) -> None:
    breaker = RedisBreaker(open_seconds=60)
    cache = Cache(Redis.from_url("redis://127.0.0.1:1/0"), ttl_seconds=60, breaker=breaker)
    loads = 0

    async def load() -> dict[str, object]:
        nonlocal loads
        loads += 1
        return {"from": "db"}

    for _ in range(5):
        assert await cache.get_or_load("test:breaker", "x", load) == {"from": "db"}
    assert cache.errors == 1  # only the first call tried Redis
    assert breaker.trips == 1
    assert loads == 5


async def test_a_held_scope_is_read_from_the_database_and_nothing_is_stored(redis: Redis) -> None:
    cache = Cache(redis, ttl_seconds=60)
    scope = f"test:held:{uuid.uuid4().hex}"

    def value(v: str) -> Callable[[], Awaitable[dict[str, object]]]:
        async def load() -> dict[str, object]:
            return {"v": v}

        return load

    assert await cache.get_or_load(scope, "x", value("old")) == {"v": "old"}  # now cached
    cache.hold(scope)  # its invalidation has not reached Redis
    before = cache_reads()
    assert await cache.get_or_load(scope, "x", value("new")) == {"v": "new"}
    assert cache_reads_since(before) == {("test", "error"): 1}  # Redis not used
    keys = [key.decode() async for key in redis.scan_iter(f"{NAMESPACE}:{scope}:*")]
    assert keys == [f"{NAMESPACE}:{scope}:x:g0"]  # nothing stored while held
    cache.set_held(set())
    before = cache_reads()
    assert await cache.get_or_load(scope, "x", value("new")) == {"v": "old"}  # Redis again
    assert cache_reads_since(before) == {("test", "hit"): 1}


async def test_bump_says_whether_redis_took_it(redis: Redis, migrated_database: str) -> None:
    scope = f"test:bump:{uuid.uuid4().hex}"
    assert await Cache(redis, ttl_seconds=60).bump(scope) is True
    assert await redis.get(f"{NAMESPACE}:{scope}:generation") == b"1"
    breaker = RedisBreaker(open_seconds=60)
    down = Cache(Redis.from_url("redis://127.0.0.1:1/0"), ttl_seconds=60, breaker=breaker)
    assert await down.bump(scope) is False
    assert down.errors == 1
    assert await down.bump(scope) is False  # breaker open: not even tried
    assert down.errors == 1
    assert await down.bump(scope, force=True) is False  # the re-drive tries anyway
    assert down.errors == 2


in_doubt = APIRouter(prefix="/probe-cache")
IN_DOUBT_SCOPE = f"test:in-doubt:{uuid.uuid4().hex}"


@in_doubt.post("/write")
async def write_then_fail_to_commit(session: SessionDep) -> None:
    await session.execute(text("SELECT 1"))
    mark_stale(session, IN_DOUBT_SCOPE)


async def test_a_commit_in_doubt_is_invalidated_too(redis: Redis, migrated_database: str) -> None:
    """COMMIT raised: it may still have landed, so what it changed is invalidated anyway."""

    def lose_connection(_: Connection) -> None:
        raise OperationalError("COMMIT", {}, Exception("connection lost during commit"))

    async with started_app(in_doubt) as application, http_client(application) as http:
        event.listen(application.state.engine.sync_engine, "commit", lose_connection)
        try:
            response = await http.post("/probe-cache/write")
        finally:
            event.remove(application.state.engine.sync_engine, "commit", lose_connection)
    assert response.status_code == 500
    assert await redis.get(f"{NAMESPACE}:{IN_DOUBT_SCOPE}:generation") == b"1"


@pytest.fixture
def account_queries(app: FastAPI) -> Iterator[list[str]]:
    with recorded_statements(app.state.engine, containing="FROM accounts") as queries:
        yield queries


async def test_the_second_read_comes_from_the_cache(
    client: AsyncClient, account_queries: list[str]
) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    url = f"/api/v1/accounts/{account['id']}"
    account_queries.clear()
    first = await client.get(url, headers=user.headers)
    loaded = len(account_queries)
    second = await client.get(url, headers=user.headers)
    assert first.json() == second.json() == account
    assert loaded == 1
    assert len(account_queries) == loaded  # no new query for the hit


async def test_a_cached_account_is_still_404_for_another_user(client: AsyncClient) -> None:
    owner = await signed_in_user(client)
    stranger = await signed_in_user(client)
    account = await open_account(client, owner)
    url = f"/api/v1/accounts/{account['id']}"
    assert (await client.get(url, headers=owner.headers)).status_code == 200  # now cached
    assert (await client.get(url, headers=stranger.headers)).status_code == 404


async def test_summary_totals_and_invalidation(client: AsyncClient, admin: SignedIn) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    url = f"/api/v1/accounts/{account['id']}/summary"
    empty = (await client.get(url, headers=user.headers)).json()
    assert (empty["credits"], empty["debits"], empty["net"], empty["count"]) == (0, 0, 0, 0)
    assert empty["from"] is None
    await adjust(client, admin, account["id"], 900)
    await adjust(client, admin, account["id"], -200)
    summary = (await client.get(url, headers=user.headers)).json()
    assert (summary["credits"], summary["debits"], summary["net"], summary["count"]) == (
        900,
        200,
        700,
        2,
    )
    assert summary["currency"] == "EUR"
    future = (
        await client.get(url, params={"from": "2999-01-01T00:00:00Z"}, headers=user.headers)
    ).json()
    assert future["count"] == 0
    assert future["from"] == "2999-01-01T00:00:00Z"
    empty_period = await client.get(
        url,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        headers=user.headers,
    )
    assert empty_period.status_code == 422
    assert empty_period.json()["fields"][0]["field"] == "query.to"


async def test_reads_right_after_payments_are_never_stale(
    live_app: FastAPI, live_http: AsyncClient, live_admin: SignedIn
) -> None:
    """Real commits: every read that starts after a payment's response sees that payment."""
    payer = await signed_in_user(live_http)
    source = await open_account(live_http, payer)
    destination = await open_account(live_http, payer, name="savings")
    await adjust(live_http, live_admin, source["id"], 10_000)
    urls = [f"/api/v1/accounts/{a['id']}" for a in (source, destination)]
    summary = f"/api/v1/accounts/{source['id']}/summary"

    async def hammer(stop: asyncio.Event) -> None:
        # Concurrent readers keep the keys hot (and racing) the whole time.
        while not stop.is_set():
            await asyncio.gather(*(live_http.get(u, headers=payer.headers) for u in urls))

    stop = asyncio.Event()
    before = cache_reads()
    readers = [asyncio.create_task(hammer(stop)) for _ in range(4)]
    try:
        for i in range(1, 21):
            paid = await live_http.post(
                "/api/v1/payments",
                json=payment_body(source["id"], destination["id"], 10),
                headers=idempotency_headers(payer),
            )
            assert paid.status_code == 201
            balances = [
                (await live_http.get(u, headers=payer.headers)).json()["balance"] for u in urls
            ]
            assert balances == [10_000 - 10 * i, 10 * i]
            totals = (await live_http.get(summary, headers=payer.headers)).json()
            assert (totals["debits"], totals["count"]) == (10 * i, 1 + i)
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert cache_reads_since(before).get(("account", "hit"), 0) > 0  # Redis served reads too


async def test_the_api_serves_from_the_database_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch, migrated_database: str
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    async with started_app() as application, http_client(application) as http:
        user = await signed_in_user(http)
        account = await open_account(http, user)
        read = await http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)
        assert read.status_code == 200
        assert read.json() == account
        # The first Redis failure opened the shared breaker: later calls skip Redis at once.
        assert application.state.redis_breaker.trips == 1
        ready = await http.get("/health/ready")
        assert ready.status_code == 503  # live and serving, but not ready


async def test_a_generation_outlives_the_entries_stored_under_it(redis: Redis) -> None:
    """A bumped scope untouched for its generation key's whole TTL must not restart at 1.

    Otherwise the next bump's generation is a number used before, and an entry stored under it
    shortly before the key expired is served again: stale after a write.
    """
    cache = Cache(redis, ttl_seconds=60)
    scope = f"test:expiry:{uuid.uuid4()}"
    generation_key = f"{NAMESPACE}:{scope}:generation"
    rows = ["p1"]

    async def load() -> dict[str, object]:
        return {"rows": list(rows)}

    await cache.bump(scope)  # a write long ago: generation 1
    await redis.expire(generation_key, 2)  # ... whose key is about to expire
    assert await cache.get_or_load(scope, "list", load) == {"rows": ["p1"]}  # stored under g1
    await asyncio.sleep(2.2)
    rows.append("p2")  # a write: committed, then its scope bumped
    await cache.bump(scope)
    assert await cache.get_or_load(scope, "list", load) == {"rows": ["p1", "p2"]}
    assert await redis.ttl(generation_key) > 60  # longer than any entry lives
