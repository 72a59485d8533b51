"""Pooled connections the server closed are discarded at checkout: no request sees them."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.dependencies import SessionDep
from tests.conftest import TEST_DATABASE_URL
from tests.integration.conftest import http_client, started_app

probe = APIRouter(prefix="/probe")


@probe.get("/backend")
async def backend(session: SessionDep) -> dict[str, int]:
    return {"pid": int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)}


@pytest.mark.usefixtures("migrated_database")
async def test_connections_terminated_in_the_pool_are_replaced_without_an_error() -> None:
    async with started_app(probe) as app, http_client(app) as client:
        # Fill the pool with several connections, all idle afterwards.
        first = await asyncio.gather(*(client.get("/probe/backend") for _ in range(4)))
        pids = {response.json()["pid"] for response in first}
        assert app.state.engine.pool.checkedin() >= 1
        killer = create_async_engine(TEST_DATABASE_URL)
        try:
            async with killer.connect() as connection:
                terminated = await connection.scalar(
                    # With a timeout, each call waits until its backend has exited (true), so
                    # the sockets are closed by the time the sleep below starts.
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
                        " FROM unnest(CAST(:pids AS int[])) AS pid"
                    ),
                    {"pids": sorted(pids)},
                )
        finally:
            await killer.dispose()
        assert terminated == len(pids)
        await asyncio.sleep(0.2)  # the server's goodbye reaches the idle sockets
        after = await asyncio.gather(*(client.get("/probe/backend") for _ in range(4)))
    assert [response.status_code for response in after] == [200] * 4
    assert not pids & {response.json()["pid"] for response in after}  # all new backends
