"""Probes: live touches nothing; ready answers 503 in the error shape when a dependency is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from httpx import AsyncClient

from tests.integration.conftest import http_client, started_app

# Nothing listens on port 1 here: connections are refused at once.
UNREACHABLE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def client_for_fresh_app() -> AsyncIterator[AsyncClient]:
    async with started_app() as app, http_client(app) as client:
        yield client


async def test_live_is_200(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_200_when_database_and_redis_answer(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.usefixtures("migrated_database")
@pytest.mark.parametrize(
    ("variable", "value", "failing"),
    [("REDIS_URL", UNREACHABLE_REDIS, "redis"), ("DATABASE_URL", UNREACHABLE_DB, "database")],
)
async def test_ready_is_503_naming_the_dependency_that_is_down(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, failing: str
) -> None:
    monkeypatch.setenv(variable, value)
    async with client_for_fresh_app() as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.status_code == 200  # the process starts and stays live without the dependency
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    body = ready.json()
    assert body["error"] == "service_unavailable"
    assert body["detail"] == f"Not ready: {failing} unreachable."


@pytest.mark.usefixtures("migrated_database")
async def test_ready_answers_within_the_timeout_when_a_dependency_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A TEST-NET address never answers: the check must give up after HEALTH_CHECK_TIMEOUT.
    monkeypatch.setenv("REDIS_URL", "redis://192.0.2.1:6379/0")
    monkeypatch.setenv("HEALTH_CHECK_TIMEOUT_SECONDS", "0.3")
    async with client_for_fresh_app() as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503


async def test_ready_is_503_while_draining(client: AsyncClient) -> None:
    from app.core.lifecycle import reset_draining, start_draining

    start_draining()
    try:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    finally:
        reset_draining()
    assert ready.status_code == 503
    assert ready.json()["detail"] == "Not ready: shutting down."
    assert live.status_code == 200
