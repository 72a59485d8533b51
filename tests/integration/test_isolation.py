"""Tests that really commit do it in a database of their own; every test starts with Redis empty."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from redis import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import signed_in_user
from tests.integration.conftest import http_client

_ROWS = text(
    "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM accounts)"
    " + (SELECT count(*) FROM ledger_entries)"
)


async def test_a_committing_test_starts_from_the_bare_schema_in_a_database_of_its_own(
    live_database: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert live_database != TEST_DATABASE_URL
    async with sessions() as session:
        # Whatever other committing tests wrote (users, accounts, postings) is not here.
        assert await session.scalar(_ROWS) == 0


async def test_what_a_committing_test_writes_stays_in_its_database(
    live_app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with http_client(live_app) as http:
        await signed_in_user(http)
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM users")) == 1


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_starts_with_an_empty_redis_database(run: str) -> None:
    with Redis.from_url(TEST_REDIS_URL) as redis:
        assert redis.dbsize() == 0, run
        redis.set(f"test:isolation:{uuid.uuid4().hex}", 1)  # the second run must not see it
