"""Checks the tests make again and again: an answer in the error shape; the SQL a block ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpx import Response
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def problem(response: Response, status: int, code: str) -> dict[str, object]:
    """The body of an error answer, checked: the status, the code, the RFC 9457 fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["error"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:fastapi-ledger:error:{code}"
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@contextmanager
def recorded_statements(
    engine: AsyncEngine, *, on: AsyncConnection | None = None, containing: str = ""
) -> Iterator[list[str]]:
    """The SQL statements the engine runs while the block runs.

    `on` keeps only one connection's (the engine's other users, such as the cache re-drive,
    would land in a count at random); `containing` keeps only statements with that text.
    """
    statements: list[str] = []
    only = on.sync_connection if on is not None else None

    def record(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if (only is None or connection is only) and containing in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
