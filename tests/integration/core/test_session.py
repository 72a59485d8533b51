"""One transaction per request, committed before the response is sent (CONVENTIONS, ADR 0009)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from httpx import AsyncClient
from sqlalchemy import Connection, column, event, insert, table, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.db import ReadOnlySessionError, create_read_session_factory
from app.core.dependencies import SessionDep, request_session
from app.core.errors import AppError
from app.core.models import TaskOutboxEntry
from tests.integration.conftest import QUIET_REDRIVE, http_client, started_app

events: list[str] = []
probe = APIRouter(prefix="/probe")
# A table of the test's own (created and dropped by `probe_app`): a write the test can look for.
CREATE = text("CREATE TABLE session_probe_writes (marker text PRIMARY KEY)")
DROP = text("DROP TABLE session_probe_writes")
INSERT = text("INSERT INTO session_probe_writes (marker) VALUES (:marker)")
COUNT = text("SELECT count(*) FROM session_probe_writes WHERE marker = :marker")
PROBE_WRITES = table("session_probe_writes", column("marker"))


async def _write(session: AsyncSession, marker: str) -> None:
    await session.execute(INSERT, {"marker": marker})


@probe.post("/write", status_code=201)
async def write(session: SessionDep, marker: str) -> dict[str, str]:
    await _write(session, marker)
    events.append("endpoint returned")
    return {"written": marker}


@probe.post("/fail-after-write", status_code=201)
async def fail_after_write(session: SessionDep, marker: str) -> None:
    await _write(session, marker)
    raise RuntimeError("boom after a write")


async def write_before_the_endpoint(request: Request, marker: str) -> None:
    # As `CurrentUser` reads the principal: through the request's session, not a SessionDep.
    await _write(request_session(request), f"{marker}-dependency")


@probe.post("/write-twice", status_code=201, dependencies=[Depends(write_before_the_endpoint)])
async def write_twice(session: SessionDep, marker: str) -> None:
    await _write(session, marker)


@probe.get("/untouched")
async def untouched(session: SessionDep) -> dict[str, bool]:
    return {"ok": True}


@probe.get("/read")
async def read(session: SessionDep, marker: str) -> dict[str, int]:
    first = await session.scalar(COUNT, {"marker": marker})
    second = await session.scalar(COUNT, {"marker": marker})
    return {"count": first + second}


@probe.get("/write-in-a-read")
async def write_in_a_read(session: SessionDep, marker: str) -> None:
    await session.execute(insert(PROBE_WRITES).values(marker=marker))


class OutcomeError(AppError):
    """A business error raised by a service."""

    code = "probe_outcome"
    status_code = 409


@probe.post("/fail-with-app-error")
async def fail_with_app_error(session: SessionDep, marker: str) -> None:
    await _write(session, marker)
    raise OutcomeError("refused")


class RecordResponseStart:
    """Outermost ASGI wrapper: notes when the response headers leave the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                events.append(f"response started {message['status']}")
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture(scope="module")
async def probe_app(migrated_database: str) -> AsyncIterator[FastAPI]:
    async with started_app(probe, **QUIET_REDRIVE) as app:
        async with app.state.engine.begin() as connection:
            await connection.execute(CREATE)
        try:
            yield app
        finally:
            async with app.state.engine.begin() as connection:
                await connection.execute(DROP)


async def kept(app: FastAPI, marker: str) -> bool:
    """Whether the probe's write with this marker was committed."""
    async with app.state.engine.connect() as connection:
        return bool(await connection.scalar(COUNT, {"marker": marker}))


@pytest.fixture
async def http(probe_app: FastAPI) -> AsyncIterator[AsyncClient]:
    events.clear()
    async with http_client(RecordResponseStart(probe_app)) as client:
        yield client


@pytest.fixture
def on_commit(probe_app: FastAPI) -> Iterator[list[Callable[[], None]]]:
    """Hooks run by the engine each time a connection really COMMITs."""
    hooks: list[Callable[[], None]] = []

    def run_hooks(_: Connection) -> None:
        events.append("commit")
        for hook in hooks:
            hook()

    engine = probe_app.state.engine.sync_engine
    event.listen(engine, "commit", run_hooks)
    yield hooks
    event.remove(engine, "commit", run_hooks)


@pytest.mark.usefixtures("on_commit")
async def test_commit_happens_before_the_response_is_sent(
    http: AsyncClient, probe_app: FastAPI
) -> None:
    response = await http.post("/probe/write", params={"marker": "committed"})
    assert response.status_code == 201
    assert events == ["endpoint returned", "commit", "response started 201"]
    assert await kept(probe_app, "committed")


async def test_a_failing_commit_answers_500_not_201(
    http: AsyncClient, on_commit: list[Callable[[], None]], probe_app: FastAPI
) -> None:
    def fail() -> None:
        raise OperationalError("COMMIT", {}, Exception("connection lost during commit"))

    on_commit.append(fail)
    response = await http.post("/probe/write", params={"marker": "commit-failed"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "COMMIT" not in response.text
    assert events == ["endpoint returned", "commit", "response started 500"]
    assert not await kept(probe_app, "commit-failed")


@pytest.mark.usefixtures("on_commit")
async def test_a_raised_business_error_rolls_back_too(
    http: AsyncClient, probe_app: FastAPI
) -> None:
    # Plain commit-or-rollback: no error commits (outcomes that must be kept are values).
    response = await http.post("/probe/fail-with-app-error", params={"marker": "refused"})
    assert response.status_code == 409
    assert response.json()["error"] == "probe_outcome"
    assert events == ["response started 409"]
    assert not await kept(probe_app, "refused")


@pytest.mark.usefixtures("on_commit")
async def test_an_endpoint_error_rolls_back_and_never_commits(
    http: AsyncClient, probe_app: FastAPI
) -> None:
    response = await http.post("/probe/fail-after-write", params={"marker": "crashed"})
    assert response.status_code == 500
    assert events == ["response started 500"]
    assert not await kept(probe_app, "crashed")


@pytest.fixture
def opened(probe_app: FastAPI) -> Iterator[list[AsyncSession]]:
    """The sessions the app opens while the test runs.

    Replaced and restored by hand: monkeypatch's undo deletes an attribute it did not find in
    the instance's `__dict__`, and `State` keeps its attributes elsewhere (the module's app
    would lose its factory).
    """
    sessions: list[AsyncSession] = []
    factory = probe_app.state.session_factory

    def counting_factory() -> AsyncSession:
        sessions.append(factory())
        return sessions[-1]

    probe_app.state.session_factory = counting_factory
    try:
        yield sessions
    finally:
        probe_app.state.session_factory = factory


async def test_a_request_that_never_uses_its_session_opens_none(
    http: AsyncClient, probe_app: FastAPI, opened: list[AsyncSession]
) -> None:
    # A cache hit declares the session (for a miss) and never touches it: it must cost nothing.
    assert (await http.get("/probe/untouched")).status_code == 200
    assert opened == []
    assert (await http.post("/probe/write", params={"marker": "opened-once"})).status_code == 201
    assert len(opened) == 1
    assert await kept(probe_app, "opened-once")


async def test_a_dependency_and_its_endpoint_share_the_request_session(
    http: AsyncClient, probe_app: FastAPI, opened: list[AsyncSession]
) -> None:
    response = await http.post("/probe/write-twice", params={"marker": "shared"})
    assert response.status_code == 201
    assert len(opened) == 1  # one session, so one transaction for both writes
    assert await kept(probe_app, "shared-dependency")
    assert await kept(probe_app, "shared")


@pytest.fixture
def statements(probe_app: FastAPI) -> Iterator[list[str]]:
    """The first word of every statement the app's connections send, BEGIN and COMMIT too.

    SQLAlchemy's event sees the statements it executes; asyncpg's query logger sees what the
    driver sends on its own (a transaction's BEGIN and COMMIT), not prepared statements.
    """
    seen: list[str] = []

    def word(query: str) -> None:
        seen.append(query.split(None, 1)[0].rstrip(";").upper())

    def logged(query: object) -> None:
        word(str(getattr(query, "query", "")))

    def executed(conn: Connection, cursor: object, statement: str, *_: object) -> None:
        word(statement)

    def attach(dbapi_connection: Any, *_: object) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def detach(dbapi_connection: Any, *_: object) -> None:
        dbapi_connection.driver_connection.remove_query_logger(logged)

    engine = probe_app.state.engine.sync_engine
    hooks = (("checkout", attach), ("checkin", detach), ("before_cursor_execute", executed))
    for name, hook in hooks:
        event.listen(engine, name, hook)
    yield seen
    for name, hook in hooks:
        event.remove(engine, name, hook)


async def test_a_read_sends_its_statements_alone_without_begin_or_commit(
    http: AsyncClient, statements: list[str]
) -> None:
    # ADR 0032: a GET's statements autocommit, each its own transaction (READ COMMITTED gives
    # each statement of a transaction its own snapshot anyway): two round trips saved.
    assert (await http.get("/probe/read", params={"marker": "none"})).json() == {"count": 0}
    assert statements == ["SELECT", "SELECT"]
    statements.clear()
    assert (await http.post("/probe/write", params={"marker": "a-write"})).status_code == 201
    assert sorted(statements) == ["BEGIN", "COMMIT", "INSERT"]  # a write keeps its transaction


async def test_a_read_that_writes_is_refused_before_the_database(
    http: AsyncClient, probe_app: FastAPI, statements: list[str]
) -> None:
    response = await http.get("/probe/write-in-a-read", params={"marker": "read-wrote"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert statements == []
    assert not await kept(probe_app, "read-wrote")


async def test_a_read_session_refuses_to_flush_new_or_changed_objects(probe_app: FastAPI) -> None:
    factory = create_read_session_factory(probe_app.state.engine)
    async with factory() as session:
        session.add(TaskOutboxEntry(task_name="probe", arguments="{}"))
        with pytest.raises(ReadOnlySessionError):
            await session.flush()
