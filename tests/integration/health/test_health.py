"""Probes: live touches nothing; ready answers 503 in the error shape when a dependency is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import ping_database
from app.health import service as health_service
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


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A loopback TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.usefixtures("migrated_database")
async def test_ready_answers_within_the_timeout_when_a_dependency_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Redis accepts the connection but never answers: the check gives up after the timeout.
    async with silent_server() as url:
        monkeypatch.setenv("REDIS_URL", url)
        monkeypatch.setenv("HEALTH_CHECK_TIMEOUT_SECONDS", "0.3")
        async with client_for_fresh_app() as client:
            started = time.monotonic()
            ready = await client.get("/health/ready")
            elapsed = time.monotonic() - started
    assert ready.status_code == 503
    assert ready.json()["detail"] == "Not ready: redis unreachable."
    assert elapsed < 5  # bounded by the timeout, not by the hang


@pytest.mark.usefixtures("migrated_database")
async def test_a_probe_flood_costs_one_check_and_one_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTH_CACHE_SECONDS", "30")
    in_use = peak = 0

    async def counting_ping(engine: AsyncEngine, *, within_seconds: float) -> bool:
        # Each database ping holds one pooled connection while it runs.
        nonlocal in_use, peak
        in_use += 1
        peak = max(peak, in_use)
        try:
            return await ping_database(engine, within_seconds=within_seconds)
        finally:
            in_use -= 1

    monkeypatch.setattr(health_service, "ping_database", counting_ping)
    async with started_app() as app, http_client(app) as client:
        for _ in range(3):  # the flood: 300 concurrent probes, several rounds
            answers = await asyncio.gather(*(client.get("/health/ready") for _ in range(300)))
            assert {answer.status_code for answer in answers} == {200}
        assert app.state.readiness.checks == 1
        assert peak == 1


@pytest.mark.usefixtures("migrated_database")
async def test_a_reused_result_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_CACHE_SECONDS", "0.25")
    now = 1_000.0  # the probe's clock, moved by the test: no sleep, no race with a busy machine
    monkeypatch.setattr(health_service, "time", SimpleNamespace(monotonic=lambda: now))
    async with started_app() as app, http_client(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        now += 0.125
        assert (await client.get("/health/ready")).status_code == 200
        assert app.state.readiness.checks == 1
        now += 0.125  # 0.25 s after the check: reused no longer (binary-exact steps)
        assert (await client.get("/health/ready")).status_code == 200
        assert app.state.readiness.checks == 2


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
