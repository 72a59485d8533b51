"""A failing statement's bound parameters (emails, password hashes) never reach a log line."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from app.core.dependencies import SessionDep
from tests.conftest import LogReader
from tests.integration.conftest import http_client, started_app

SECRET = "$argon2id$v=19$m=65536,t=2,p=1$c2VjcmV0LWhhc2g"
probe = APIRouter(prefix="/probe")


@probe.post("/bad-parameter")
async def bad_parameter(session: SessionDep) -> None:
    # The database refuses the value: the DBAPI error would quote it with its statement.
    await session.execute(text("SELECT CAST(:value AS integer)"), {"value": SECRET})


async def test_a_failed_statement_logs_no_bound_parameter(
    migrated_database: str, log_lines: LogReader
) -> None:
    async with started_app(probe) as app, http_client(app) as client:
        response = await client.post("/probe/bad-parameter")
    assert response.status_code == 500
    lines = log_lines()
    errors = [line for line in lines if line.get("event") == "unhandled_exception"]
    assert errors, lines
    assert "SELECT CAST" in str(errors[0]["exception"])  # the statement is still there to debug
    assert all(SECRET not in str(line) for line in lines)
    assert SECRET not in response.text
