"""Integration fixtures: the real app on the real Postgres and Redis, each test rolled back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from app.main import create_app
from app.users import service as users_service
from tests.conftest import TEST_REDIS_URL
from tests.factories import SignedIn, signed_in_user


@asynccontextmanager
async def started_app(*routers: APIRouter) -> AsyncIterator[FastAPI]:
    """A fresh app (settings from the environment as it is now), with extra test routes."""
    application = create_app()
    for router in routers:
        application.include_router(router)
    async with LifespanManager(application):
        yield application


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


@pytest.fixture
async def empty_redis(migrated_database: str) -> AsyncIterator[None]:
    """The test Redis database, emptied before and after the test (rate-limit counters)."""
    redis = Redis.from_url(TEST_REDIS_URL)
    await redis.flushdb()
    yield
    await redis.flushdb()
    await redis.aclose()


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
        original = app.state.session_factory
        app.state.session_factory = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        try:
            yield connection
        finally:
            app.state.session_factory = original
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
async def admin(client: AsyncClient, session: AsyncSession) -> SignedIn:
    """A signed-in admin (promoted inside the test's transaction)."""
    user = await signed_in_user(client)
    await users_service.promote_to_admin(session, user_id=uuid.UUID(user.id))
    await session.flush()
    return user


# --- real commits: for concurrency tests, where a rolled-back connection cannot serve ------


@pytest.fixture(scope="session")
async def live_app(migrated_database: str) -> AsyncIterator[FastAPI]:
    """An app whose requests really commit, on a real pool (no rolled-back test transaction)."""
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
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> SignedIn:
    """A signed-in admin, promoted in a committed transaction."""
    user = await signed_in_user(live_http)
    async with sessions() as session, session.begin():
        await users_service.promote_to_admin(session, user_id=uuid.UUID(user.id))
    return user
