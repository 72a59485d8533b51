"""A missed invalidation cannot outlive Redis' recovery (issue 8, row 4; ADR 0016).

Real Postgres (a database of this module's own: the other tests' apps re-drive the main one
into the shared Redis) and a private Redis reached through stallable proxies, one per app
instance, so an outage can hit every instance or only one. Settings are small so that
the breaker, not only the fix, is long closed again when the assertions run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.cache import (
    NAMESPACE,
    NOTIFY_CHANNEL,
    Cache,
    mark_stale,
    record_invalidations,
    take_stale,
)
from app.core.config import get_settings
from app.core.db import create_session_factory
from app.core.invalidation import Invalidator
from app.users import service as users_service
from tests.conftest import database_copy
from tests.factories import DEFAULT_PASSWORD, SignedIn, adjust, login, open_account, signed_in_user
from tests.integration.conftest import http_client, started_app
from tests.integration.core.redis_outage import StallableProxy, private_redis
from tests.metrics import cache_reads, cache_reads_since

ME = "/api/v1/users/me"
NEW_PASSWORD = "another-sturdy-passphrase-43"
BREAKER_SECONDS = 0.2
REDRIVE_SECONDS = 0.5


@pytest.fixture(scope="module")
def outage_database(migrated_database: str) -> Iterator[str]:
    with database_copy(migrated_database) as url:
        yield url


@pytest.fixture
async def database(
    outage_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncEngine]:
    """The module's database for every app of the test, emptied of leftover invalidations."""
    monkeypatch.setenv("DATABASE_URL", outage_database)
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT_SECONDS", "0.2")
    monkeypatch.setenv("REDIS_BREAKER_SECONDS", str(BREAKER_SECONDS))
    monkeypatch.setenv("CACHE_REDRIVE_SECONDS", str(REDRIVE_SECONDS))
    engine = create_async_engine(outage_database)
    await _forget_invalidations(engine)
    yield engine
    await _forget_invalidations(engine)
    await engine.dispose()


async def _forget_invalidations(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM cache_invalidations"))


async def recorded(engine: AsyncEngine) -> int:
    """How many invalidations wait in the table."""
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM cache_invalidations"))
    return int(count or 0)


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    with private_redis(tmp_path) as port:
        yield port


@pytest.fixture
async def new_path(redis_port: int) -> AsyncIterator[Callable[[], Awaitable[StallableProxy]]]:
    """Make a network path (a stallable proxy) to the private Redis."""
    made: list[StallableProxy] = []

    async def make() -> StallableProxy:
        proxy = StallableProxy(redis_port)
        await proxy.start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        await proxy.close()


@dataclass
class Instance:
    """One running app (one API process) and a client of it."""

    app: FastAPI
    http: AsyncClient

    async def status(self, path: str, user: SignedIn) -> int:
        return (await self.http.get(path, headers=user.headers)).status_code

    async def balance(self, account: dict[str, object], user: SignedIn) -> object:
        response = await self.http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()["balance"]


@asynccontextmanager
async def instance(
    path: StallableProxy, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[Instance]:
    """Start an app whose Redis is reached through `path`."""
    monkeypatch.setenv("REDIS_URL", path.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    async with started_app() as app, http_client(app) as http:
        yield Instance(app, http)


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> bool:
    """Poll `check` until it holds; False if it still does not after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def signed_in_admin(node: Instance) -> SignedIn:
    """A user promoted in a committed transaction of its own (as the seed does)."""
    admin = await signed_in_user(node.http)
    async with node.app.state.session_factory() as session, session.begin():
        await users_service.promote_to_admin(session, user_id=uuid.UUID(admin.id))
    return admin


async def with_new_password(node: Instance, user: SignedIn) -> SignedIn:
    """Change the user's password through the API; the same user with a new token pair."""
    changed = await node.http.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert changed.status_code == 204, changed.text
    tokens = await login(node.http, email=user.email, password=NEW_PASSWORD)
    return SignedIn(
        user.id, user.email, NEW_PASSWORD, tokens["access_token"], tokens["refresh_token"]
    )


async def warmed_user(nodes: list[Instance]) -> tuple[SignedIn, dict[str, object]]:
    """A new user with an account, signed up through the first instance; every instance has
    the principal and the balance in the cache (read twice: a hit)."""
    user = await signed_in_user(nodes[0].http)
    account = await open_account(nodes[0].http, user)
    await warm(nodes, user, account)
    return user, account


async def warm(nodes: list[Instance], user: SignedIn, account: dict[str, object]) -> None:
    """Every instance has the principal and the balance in the cache (read twice: a hit)."""
    for node in nodes:
        assert await node.status(ME, user) == 200
        assert await node.balance(account, user) == 0
        before = cache_reads()
        assert await node.status(ME, user) == 200
        assert await node.balance(account, user) == 0
        assert cache_reads_since(before) == {("user", "hit"): 2, ("account", "hit"): 1}


async def test_the_row_scenario_a_stall_for_everyone_is_not_undone_by_recovery(
    database: AsyncEngine,
    new_path: Callable[[], Awaitable[StallableProxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 8 row 4: password change + adjustment while Redis stalls, then Redis comes back."""
    path_a, path_b = await new_path(), await new_path()
    async with instance(path_a, monkeypatch) as a, instance(path_b, monkeypatch) as b:
        admin = await signed_in_admin(a)
        user, account = await warmed_user([a, b])

        path_a.stall()
        path_b.stall()
        renewed = await with_new_password(a, user)  # committed; its bump cannot reach Redis
        await adjust(a.http, admin, account["id"], 500)
        for node in (a, b):
            assert await node.status(ME, user) == 401
            assert await node.balance(account, renewed) == 500

        path_a.resume()
        path_b.resume()
        await asyncio.sleep(BREAKER_SECONDS * 2)  # both breakers closed: Redis is read again
        for node in (b, a):  # the instance that did not commit first, then the one that did
            assert await node.status(ME, user) == 401
            assert await node.balance(account, renewed) == 500

        # Applied and forgotten within a re-drive or two; then, once each instance has
        # re-driven since, served from Redis again, and fresh at every read on the way.
        assert await eventually(lambda: _none_recorded(database), within=4 * REDRIVE_SECONDS)
        for node in (b, a):

            async def fresh_and_from_redis(node: Instance = node) -> bool:
                before = cache_reads()
                assert await node.status(ME, user) == 401
                assert await node.balance(account, renewed) == 500
                return cache_reads_since(before).get(("account", "hit")) == 1

            assert await eventually(fresh_and_from_redis, within=10 * REDRIVE_SECONDS)


async def _none_recorded(engine: AsyncEngine) -> bool:
    return await recorded(engine) == 0


async def test_an_instance_that_reaches_redis_refuses_at_once_what_another_could_not_bump(
    database: AsyncEngine,
    new_path: Callable[[], Awaitable[StallableProxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partition: Redis answers B but not A. B learns from Postgres, not from its poll."""
    path_a, path_b = await new_path(), await new_path()
    slow_poll = {"CACHE_REDRIVE_SECONDS": "30"}  # a notification, not a poll, must do it
    async with (
        instance(path_a, monkeypatch, **slow_poll) as a,
        instance(path_b, monkeypatch, **slow_poll) as b,
    ):
        user, _ = await warmed_user([a, b])

        path_a.stall()
        await with_new_password(a, user)
        assert await eventually(lambda: _refused(b, user), within=2.0)
        statuses = [await b.status(ME, user) for _ in range(5)]
        assert statuses == [401] * 5  # and it never comes back
        assert await eventually(lambda: _none_recorded(database), within=2.0)  # B applied it
        assert await a.status(ME, user) == 401

        path_a.resume()
        await asyncio.sleep(BREAKER_SECONDS * 2)
        assert [await node.status(ME, user) for node in (a, b, a, b)] == [401] * 4


async def _refused(node: Instance, user: SignedIn) -> bool:
    return await node.status(ME, user) == 401


async def test_what_a_dead_instance_missed_is_applied_by_the_others_and_by_a_new_one(
    database: AsyncEngine,
    new_path: Callable[[], Awaitable[StallableProxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path_a, path_b = await new_path(), await new_path()
    async with instance(path_b, monkeypatch) as b:
        async with instance(path_a, monkeypatch) as a:
            user, _ = await warmed_user([a, b])
            path_a.stall()
            path_b.stall()
            await with_new_password(a, user)
            assert await recorded(database) >= 1
        # A is gone before Redis is back: it never retried. Its miss is in the table.
        path_a.resume()
        path_b.resume()
        await asyncio.sleep(BREAKER_SECONDS * 2)
        # B, which lived through the outage, and C, started after it: neither reads the old
        # principal, although its entry is still in Redis under the generation it had.
        async with instance(await new_path(), monkeypatch) as c:
            for node in (c, b):
                assert await node.status(ME, user) == 401
            assert await eventually(lambda: _none_recorded(database), within=4 * REDRIVE_SECONDS)
            for node in (c, b, c, b):
                assert await node.status(ME, user) == 401


async def test_a_worker_commit_that_nobody_bumps_is_applied_everywhere(
    database: AsyncEngine,
    new_path: Callable[[], Awaitable[StallableProxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task or the CLI commits its own session and calls nothing after it."""
    async with instance(await new_path(), monkeypatch, CACHE_REDRIVE_SECONDS="30") as a:
        user, _ = await warmed_user([a])
        async with a.app.state.session_factory() as session, session.begin():
            credentials = await users_service.get_credentials(session, email=user.email)
            assert credentials is not None
            assert await users_service.replace_password_hash(
                session,
                user_id=uuid.UUID(user.id),
                old_hash=credentials.password_hash,
                new_hash="not-a-hash",
                changed_at=datetime.now(UTC),
            )
        assert await eventually(lambda: _refused(a, user), within=2.0)
        assert [await a.status(ME, user) for _ in range(3)] == [401] * 3


# --- the pieces, one at a time -------------------------------------------------------------


@asynccontextmanager
async def pieces(
    path: StallableProxy, database_url: str, *, interval: float = 30.0
) -> AsyncIterator[tuple[Cache, Invalidator, async_sessionmaker[AsyncSession]]]:
    """A cache through `path` and an invalidator on `database_url`, not started."""
    redis = Redis.from_url(path.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    cache = Cache(redis, ttl_seconds=60)
    engine = create_async_engine(database_url)
    sessions = create_session_factory(engine)
    invalidator = Invalidator(cache, sessions, engine, interval_seconds=interval)
    try:
        yield cache, invalidator, sessions
    finally:
        await invalidator.stop()
        await redis.aclose()
        await engine.dispose()


KIND = "test"  # the cache label of unique_scope()'s scopes


def unique_scope() -> str:
    return f"{KIND}:{uuid.uuid4().hex}"


async def generation(port: int, scope: str) -> int:
    """The scope's generation, read straight from the private Redis (no proxy)."""
    async with Redis(port=port) as redis:
        return int(await redis.get(f"{NAMESPACE}:{scope}:generation") or 0)


async def recorded_scopes(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT scope FROM cache_invalidations ORDER BY id"))
        return [row.scope for row in rows]


def value(v: object) -> Callable[[], Awaitable[dict[str, object]]]:
    async def load() -> dict[str, object]:
        return {"v": v}

    return load


async def test_a_missed_bump_is_held_at_once_recorded_and_applied_once_redis_is_back(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
    redis_port: int,
) -> None:
    path = await new_path()
    scope = unique_scope()
    async with pieces(path, outage_database) as (cache, invalidator, _):
        path.stall()
        await invalidator.after_commit({scope})
        assert cache.held == {scope}  # before the response: this process never reads it stale
        assert await recorded_scopes(database) == [scope]
        assert not await invalidator.redrive()  # Redis still away: kept, still held
        assert cache.held == {scope}
        assert await recorded_scopes(database) == [scope]

        path.resume()
        assert await invalidator.redrive()
        assert cache.held == frozenset()
        assert await recorded_scopes(database) == []
        assert await generation(redis_port, scope) == 1


async def test_a_reader_that_loaded_old_rows_before_the_commit_cannot_bring_them_back(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
) -> None:
    path = await new_path()
    scope = unique_scope()
    async with pieces(path, outage_database) as (cache, invalidator, _):
        loaded, release = asyncio.Event(), asyncio.Event()

        async def old_rows() -> dict[str, object]:
            loaded.set()
            await release.wait()
            return {"balance": 0}

        slow = asyncio.create_task(cache.get_or_load(scope, "read", old_rows))
        await loaded.wait()  # it read generation 0, then the rows, before the commit
        path.stall()
        await invalidator.after_commit({scope})
        path.resume()
        assert await invalidator.redrive()
        release.set()
        assert await slow == {"balance": 0}  # its answer, stored only now under generation 0
        assert await cache.get_or_load(scope, "read", value(500)) == {"v": 500}


async def test_after_a_redis_failure_redis_is_trusted_only_once_a_redrive_caught_up(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
) -> None:
    path = await new_path()
    scope = unique_scope()
    async with pieces(path, outage_database) as (cache, invalidator, _):
        cache.watch_failures()  # as Invalidator.start() does
        before = cache_reads()
        assert await cache.get_or_load(scope, "x", value("old")) == {"v": "old"}
        assert cache_reads_since(before) == {(KIND, "error"): 1}  # starting: no re-drive yet
        assert await invalidator.redrive()
        assert await cache.get_or_load(scope, "x", value("old")) == {"v": "old"}  # stored
        assert await cache.get_or_load(scope, "x", value("new")) == {"v": "old"}  # a hit

        path.stall()
        assert await cache.get_or_load(unique_scope(), "x", value(1)) == {"v": 1}  # fails open
        path.resume()
        before = cache_reads()
        assert await cache.get_or_load(scope, "x", value("db")) == {"v": "db"}  # not trusted
        assert cache_reads_since(before) == {(KIND, "error"): 1}  # Redis not even asked
        assert await invalidator.redrive()
        assert await cache.get_or_load(scope, "x", value("db")) == {"v": "old"}  # trusted again


async def test_when_the_database_fails_too_the_miss_still_reaches_redis_when_it_is_back(
    new_path: Callable[[], Awaitable[StallableProxy]], redis_port: int
) -> None:
    path = await new_path()
    scope = unique_scope()
    nowhere = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    async with pieces(path, nowhere) as (cache, invalidator, _):
        path.stall()
        await invalidator.after_commit({scope})  # bump and record both fail
        assert cache.held == {scope}
        path.resume()
        assert not await invalidator.redrive()  # the table cannot be read...
        assert await generation(redis_port, scope) == 1  # ...but its own miss was applied
        assert cache.held == {scope}  # others' rows may wait in the table: still held


async def test_every_process_holds_a_recorded_scope_as_soon_as_it_is_notified(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
) -> None:
    path = await new_path()
    scope = unique_scope()
    async with pieces(path, outage_database) as (cache, invalidator, sessions):
        await invalidator.start()  # re-drives every 30 s: only a notification can be this quick
        assert await eventually(lambda: _listening(invalidator), within=2.0)
        path.stall()  # so that the re-drive it wakes cannot apply it yet
        async with sessions() as session, session.begin():
            await session.run_sync(record_invalidations, [scope])
        assert await eventually(lambda: _holds(cache, scope), within=2.0)


async def test_the_listener_reconnects_and_reads_what_it_missed(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
    redis_port: int,
) -> None:
    path = await new_path()
    async with pieces(path, outage_database, interval=0.3) as (_, invalidator, sessions):
        await invalidator.start()
        assert await eventually(lambda: _listening(invalidator), within=2.0)
        async with database.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        assert await eventually(lambda: _not_listening(invalidator), within=2.0)
        assert await eventually(lambda: _listening(invalidator), within=2.0)
        scope = unique_scope()
        async with sessions() as session, session.begin():
            await session.run_sync(record_invalidations, [scope])
        assert await eventually(lambda: _none_recorded(database), within=2.0)
        assert await generation(redis_port, scope) == 1


async def _listening(invalidator: Invalidator) -> bool:
    return invalidator.listening


async def _not_listening(invalidator: Invalidator) -> bool:
    return not invalidator.listening


async def _holds(cache: Cache, scope: str) -> bool:
    return scope in cache.held


async def test_a_commit_whose_scopes_nobody_claimed_records_them_in_its_own_transaction(
    database: AsyncEngine,
) -> None:
    sessions = create_session_factory(database)
    heard: list[str] = []
    async with database.connect() as listener:
        driver = (await listener.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[-1]))
        async with sessions() as session:
            async with session.begin():
                mark_stale(session, "test:b", "test:a")
                savepoint = await session.begin_nested()
                mark_stale(session, "test:c")
                await savepoint.commit()  # a savepoint is no commit: nothing recorded yet
                assert await recorded_scopes(database) == []
            assert await recorded_scopes(database) == ["test:a", "test:b", "test:c"]
        assert await eventually(lambda: _heard(heard), within=2.0)
        assert heard == ["test:a test:b test:c"]

        async with sessions() as session, session.begin():
            mark_stale(session, "test:claimed")
            assert take_stale(session) == {"test:claimed"}  # whoever claims them bumps them
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            mark_stale(session, "test:rolled-back")
            await session.rollback()
        assert await recorded_scopes(database) == ["test:a", "test:b", "test:c"]


async def _heard(heard: list[str]) -> bool:
    return bool(heard)


async def test_a_long_outage_is_applied_in_batches_until_none_is_left(
    database: AsyncEngine,
    outage_database: str,
    new_path: Callable[[], Awaitable[StallableProxy]],
    redis_port: int,
) -> None:
    # More rows than one DELETE ... IN (...) may bind (asyncpg: 32,767 parameters).
    scopes = [unique_scope() for _ in range(3)]
    async with database.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO cache_invalidations (scope) "
                "SELECT (ARRAY[:a, :b, :c])[1 + n % 3] FROM generate_series(1, 40000) AS n"
            ),
            {"a": scopes[0], "b": scopes[1], "c": scopes[2]},
        )
    path = await new_path()
    async with pieces(path, outage_database) as (_, invalidator, _):
        passes = [await invalidator.redrive() for _ in range(9)]
    assert passes == [False] * 8 + [True]  # 5,000 rows a pass, then caught up
    assert await recorded_scopes(database) == []
    for scope in scopes:
        assert await generation(redis_port, scope) == 8  # bumped once per pass that saw it
