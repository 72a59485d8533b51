"""A database pool that stays busy is a 503 with Retry-After (saturation), never a 500."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from sqlalchemy import text

from app.core.dependencies import SessionDep
from tests.factories import signed_in_user
from tests.integration.conftest import QUIET_REDRIVE, http_client, started_app

probe = APIRouter(prefix="/probe")


@probe.get("/query")
async def query(session: SessionDep) -> dict[str, int]:
    return {"value": int(await session.scalar(text("SELECT 1")) or 0)}


@pytest.mark.usefixtures("migrated_database")
async def test_a_request_that_cannot_get_a_connection_in_time_is_a_503(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("DB_POOL_TIMEOUT_SECONDS", "0.2")
    async with started_app(probe, **QUIET_REDRIVE) as app, http_client(app) as client:
        await signed_in_user(client)  # the app works with its small pool
        engine = app.state.engine
        held = [
            await engine.connect() for _ in range(engine.pool.size() - engine.pool.checkedout())
        ]
        try:
            response = await client.get("/probe/query")
        finally:
            for connection in held:
                await connection.close()
        after = await client.get("/probe/query")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "service_unavailable"
    assert after.status_code == 200
