"""Integration fixtures: the real app on the real Postgres and Redis, each test isolated.

Most tests run in a transaction that is rolled back; the `live_*` ones really commit, into a
database of their own. Every test starts with an empty test Redis database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from redis import Redis as SyncRedis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.types import ASGIApp

from app.core.cache import take_stale
from app.core.config import Settings, get_settings
from app.core.db import ReadOnlySession
from app.main import create_app
from app.users import service as users_service
from tests.conftest import TEST_REDIS_URL, database_copy
from tests.factories import SignedIn, signed_in_user

# The cache re-drive (ADR 0016) polls the database from the app's own pool every
# CACHE_REDRIVE_SECONDS (1 s). A test that counts that pool's connections, or every statement
# it sends, starts its app with `started_app(..., **QUIET_REDRIVE)`: the pass at start-up and
# those a NOTIFY wakes still run, but no poll lands in the count at random.
QUIET_REDRIVE: dict[str, Any] = {"CACHE_REDRIVE_SECONDS": 60}


@asynccontextmanager
async def started_app(*routers: APIRouter, **settings: Any) -> AsyncIterator[FastAPI]:
    """A fresh app (settings from the environment as it is now, then these), with test routes."""
    application = create_app(Settings(**settings) if settings else None)
    for router in routers:
        application.include_router(router)
    async with LifespanManager(application):
        yield application


async def clear_of_a_window_edge(period_seconds: int, *, margin_seconds: float = 10) -> None:
    """Return at least `margin_seconds` before the wall clock's next multiple of the period.

    With Redis down, the per-process rate-limit fallback (`limits`' memory storage) counts in
    windows that start on the wall clock (each minute, each hour), and a burst that crosses a
    window's start is weighed by the library's sliding approximation, one earlier hit forgiven.
    A test that counts a burst exactly starts it here, so the burst stays in one window.
    """
    left = period_seconds - time.time() % period_seconds
    if left < margin_seconds:
        await asyncio.sleep(left + 0.05)


@contextmanager
def settings_changed(app: FastAPI, **changes: object) -> Iterator[None]:
    """A started app's settings changed while the block runs (it reads its own, not the env)."""
    original = app.state.settings
    app.state.settings = original.model_copy(update=changes)
    try:
        yield
    finally:
        app.state.settings = original


@asynccontextmanager
async def http_client(asgi: ASGIApp) -> AsyncIterator[AsyncClient]:
    """An in-process HTTP client; app exceptions become responses, as behind a real server."""
    transport = ASGITransport(app=asgi, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(autouse=True)
def _empty_redis() -> None:
    """The test Redis database, emptied before each test: no counter, cached entry or
    generation of another test's is seen (nor an outcome that depends on their order)."""
    with SyncRedis.from_url(TEST_REDIS_URL) as redis:
        redis.flushdb()


def asgi_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, object]:
    """An HTTP scope as a server would build it, for driving the app with a hand-made receive."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


@pytest.fixture(scope="session")
async def app(migrated_database: str) -> AsyncIterator[FastAPI]:
    """One application for the session, started and stopped through its real lifespan."""
    async with started_app() as application:
        yield application


@pytest.fixture
async def db_connection(app: FastAPI) -> AsyncIterator[AsyncConnection]:
    """Run the test inside a transaction that is rolled back, whatever the app commits.

    The request's session joins this outer transaction through a SAVEPOINT, so the real
    `get_session` code (begin, commit) runs, yet nothing outlives the test.
    """
    async with app.state.engine.connect() as connection:
        transaction = await connection.begin()
        originals = app.state.session_factory, app.state.read_session_factory
        # Reads too: inside the test's transaction (not autocommit), still refusing writes.
        app.state.session_factory, app.state.read_session_factory = (
            async_sessionmaker(
                bind=connection,
                expire_on_commit=False,
                autoflush=False,
                join_transaction_mode="create_savepoint",
                sync_session_class=sync_session_class,
            )
            for sync_session_class in (Session, ReadOnlySession)
        )
        try:
            yield connection
        finally:
            app.state.session_factory, app.state.read_session_factory = originals
            await transaction.rollback()


@pytest.fixture
async def session(db_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session on the test's transaction, for arranging data and checking effects."""
    async with AsyncSession(
        bind=db_connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    ) as session:
        yield session


@pytest.fixture
async def client(app: FastAPI, db_connection: AsyncConnection) -> AsyncIterator[AsyncClient]:
    """An HTTP client on the session's app, inside the test's rolled-back transaction."""
    async with http_client(app) as http:
        yield http


@pytest.fixture
async def admin(app: FastAPI, client: AsyncClient, session: AsyncSession) -> SignedIn:
    """A signed-in admin (promoted inside the test's transaction; its cached principal gone)."""
    user = await signed_in_user(client)
    await users_service.promote_to_admin(session, user_id=uuid.UUID(user.id))
    await session.flush()
    # As the request's session dependency does after its commit: a principal cached as a
    # plain user must not outlive the promotion.
    await app.state.invalidator.after_commit(take_stale(session))
    return user


# --- real commits: for concurrency tests, where a rolled-back connection cannot serve ------


@pytest.fixture
def live_database(migrated_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of the test's own, named by DATABASE_URL for the app, the CLI and Alembic."""
    with database_copy(migrated_database) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        yield url


@pytest.fixture
async def live_app(live_database: str) -> AsyncIterator[FastAPI]:
    """An app whose requests really commit, on a real pool, into the test's own database."""
    async with started_app() as application:
        yield application


@pytest.fixture
async def live_http(live_app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An HTTP client on the committing app."""
    async with http_client(live_app) as http:
        yield http


@pytest.fixture
def sessions(live_app: FastAPI) -> async_sessionmaker[AsyncSession]:
    """The committing app's session factory, to arrange and check committed rows."""
    factory: async_sessionmaker[AsyncSession] = live_app.state.session_factory
    return factory


@pytest.fixture
async def live_admin(
    live_app: FastAPI, live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> SignedIn:
    """A signed-in admin, promoted in a committed transaction (its cached principal gone)."""
    user = await signed_in_user(live_http)
    async with sessions() as session, session.begin():
        await users_service.promote_to_admin(session, user_id=uuid.UUID(user.id))
        stale = take_stale(session)
    await live_app.state.invalidator.after_commit(stale)
    return user
