"""The auth endpoints' own rate limits: registration, login budgets, current-password checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.config import get_settings
from tests.conftest import TEST_REDIS_URL
from tests.factories import unique_email
from tests.integration.conftest import http_client, started_app

REGISTER = "/api/v1/auth/register"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
async def _empty_redis(migrated_database: str) -> AsyncIterator[None]:
    redis = Redis.from_url(TEST_REDIS_URL)
    await redis.flushdb()
    yield
    await redis.flushdb()
    await redis.aclose()


def registration() -> dict[str, str]:
    return {"email": unique_email(), "password": "a-sturdy-passphrase-42", "full_name": "T"}


async def test_registration_stays_limited_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each registration costs an Argon2 hash: a Redis outage must not lift the limit."""
    monkeypatch.setenv("RATE_LIMIT_REGISTER", "5/minute")
    monkeypatch.setenv("REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()
    async with started_app() as application, http_client(application) as http:
        statuses = [(await http.post(REGISTER, json=registration())).status_code for _ in range(8)]
    assert statuses == [201] * 5 + [429] * 3
