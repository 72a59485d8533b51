"""Integration fixtures: the real app on the real Postgres and Redis, each test rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.main import create_app


@pytest.fixture(scope="session")
async def app(migrated_database: str) -> AsyncIterator[FastAPI]:
    """One application for the session, started and stopped through its real lifespan."""
    application = create_app()
    async with LifespanManager(application):
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
    """An HTTP client calling the app in-process; app exceptions become responses, as in prod."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
