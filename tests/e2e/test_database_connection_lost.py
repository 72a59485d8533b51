"""A lost database connection is a 503 to retry, never a 500 (found by `make chaos`).

The pool does not ping connections before use (ADR 0021), so after the server drops them
(a restart, a failover, `pg_terminate_backend`) the next request on a pooled connection fails.
That request must answer 503 `service_unavailable` with Retry-After, the pool must let go of the
dead connections, and the request after it must work.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import get_settings
from tests.e2e.conftest import ROOT, Server, free_port, start_app_server
from tests.factories import DEFAULT_PASSWORD, unique_email


async def _admin(url: str, statement: str, **params: str) -> int:
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement), params)
            return int(result.scalar() or 0) if result.returns_rows else 0
    finally:
        await engine.dispose()


@pytest.fixture
def api() -> Iterator[tuple[Server, str]]:
    """An API on a database of its own, whose connections the test may kill."""
    name = f"ledger_lost_{secrets.token_hex(4)}"
    url = make_url(str(get_settings().DATABASE_URL)).set(database=name)
    database_url = url.render_as_string(hide_password=False)
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    env = {"DATABASE_URL": database_url, "RATE_LIMIT_REGISTER": "10000/minute"}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = start_app_server(port, env)
    try:
        yield server, database_url
    finally:
        server.stop()
        asyncio.run(_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _payment_cut_mid_query(server: Server, database_url: str) -> list[httpx.Response]:
    """A payment blocked on a row lock the test holds; its connection is killed meanwhile."""
    database = make_url(database_url).database or ""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        email = unique_email("lost")
        body = {"email": email, "password": DEFAULT_PASSWORD, "full_name": "Lost"}
        assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
        form = {"username": email, "password": DEFAULT_PASSWORD}
        token = (await client.post("/api/v1/auth/login", data=form)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        accounts = [
            (
                await client.post(
                    "/api/v1/accounts", json={"currency": "EUR", "name": n}, headers=auth
                )
            ).json()["id"]
            for n in ("From", "To")
        ]
        payment = {
            "source_account_id": accounts[0],
            "destination_account_id": accounts[1],
            "amount": 100,
            "currency": "EUR",
        }
        headers = {**auth, "Idempotency-Key": secrets.token_hex(16)}
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as locker, engine.connect() as killer:
                await locker.execute(text("BEGIN"))
                await locker.execute(
                    text("SELECT id FROM accounts WHERE id = ANY(CAST(:ids AS uuid[])) FOR UPDATE"),
                    {"ids": accounts},
                )
                paying = asyncio.create_task(
                    client.post("/api/v1/payments", json=payment, headers=headers)
                )
                for _ in range(200):  # the posting waits for the locked rows
                    waiting = (
                        (
                            await killer.execute(
                                text(
                                    "SELECT pid FROM pg_stat_activity WHERE datname = :name "
                                    "AND wait_event_type = 'Lock'"
                                ),
                                {"name": database},
                            )
                        )
                        .scalars()
                        .all()
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
                assert waiting, "the payment never waited for the lock"
                await killer.execute(
                    text("SELECT pg_terminate_backend(CAST(:pid AS int))"), {"pid": waiting[0]}
                )
                cut = await paying
                await locker.execute(text("ROLLBACK"))
        finally:
            await engine.dispose()
        again = await client.post("/api/v1/payments", json=payment, headers=headers)
    return [cut, again]


def test_a_payment_whose_connection_is_killed_answers_503_and_its_key_is_free(
    api: tuple[Server, str],
) -> None:
    server, database_url = api
    cut, again = asyncio.run(_payment_cut_mid_query(server, database_url))
    assert cut.status_code == 503, cut.text
    assert cut.headers["retry-after"] == "1"
    assert cut.json()["error"] == "service_unavailable"
    # Nothing was committed for the key: the retry is carried out (the account holds nothing).
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "insufficient_funds"
    assert "db_connection_lost" in server.output()
