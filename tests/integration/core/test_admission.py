"""At most N requests run at once, a bounded queue waits briefly, the rest get a fast 503."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pytest
from fastapi import APIRouter, Request
from sqlalchemy import event, text
from starlette.types import Message

from app.core.admission import AdmissionMiddleware, CancelOnDisconnectMiddleware
from app.core.dependencies import SessionDep
from tests.conftest import LogReader
from tests.integration.conftest import QUIET_REDRIVE, asgi_scope, http_client, started_app

probe = APIRouter(prefix="/probe")
Layer = TypeVar("Layer")
release = asyncio.Event()
running = 0


@probe.get("/slow")
async def slow() -> dict[str, int]:
    global running
    running += 1
    try:
        await release.wait()
    finally:
        running -= 1
    return {"ok": 1}


async def running_at_least(count: int) -> None:
    for _ in range(500):  # up to 5 s
        if running >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {running} of {count} requests started")


@pytest.mark.usefixtures("migrated_database")
async def test_beyond_the_slots_and_the_queue_the_answer_is_an_immediate_503(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "2")
    monkeypatch.setenv("ADMISSION_QUEUE_LIMIT", "1")
    monkeypatch.setenv("ADMISSION_WAIT_SECONDS", "30")
    release.clear()
    async with started_app(probe) as app, http_client(app) as client:
        first = [asyncio.create_task(client.get("/probe/slow")) for _ in range(2)]
        await running_at_least(2)
        queued = asyncio.create_task(client.get("/probe/slow"))
        await asyncio.sleep(0.05)
        refused = await client.get("/probe/slow")  # slots and queue are full: no waiting
        live = await client.get("/health/live")  # probes are never queued
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["error"] == "service_unavailable"
        assert live.status_code == 200
        assert not queued.done()
        release.set()
        answers = await asyncio.gather(*first, queued)
    assert [answer.status_code for answer in answers] == [200, 200, 200]


@pytest.mark.usefixtures("migrated_database")
async def test_a_queued_request_that_waits_too_long_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ADMISSION_QUEUE_LIMIT", "10")
    monkeypatch.setenv("ADMISSION_WAIT_SECONDS", "0.2")
    release.clear()
    async with started_app(probe) as app, http_client(app) as client:
        holder = asyncio.create_task(client.get("/probe/slow"))
        await running_at_least(1)
        waited = await client.get("/probe/slow")
        assert waited.status_code == 503
        release.set()
        assert (await holder).status_code == 200
        # The slot is free again: the next request runs.
        assert (await client.get("/probe/slow")).status_code == 200


cancelled_work: list[str] = []
in_transaction = asyncio.Event()
endpoint_connections: list[object] = []


@probe.post("/slow-write")
async def slow_write(session: SessionDep) -> dict[str, int]:
    await session.execute(text("SELECT pg_sleep(0)"))  # the transaction holds a connection
    raw = await (await session.connection()).get_raw_connection()
    endpoint_connections.append(raw.dbapi_connection)
    in_transaction.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        cancelled_work.append("slow-write")
        raise
    return {"ok": 1}


@pytest.mark.usefixtures("migrated_database")
async def test_a_request_whose_client_left_is_cancelled_and_rolled_back(
    log_lines: LogReader,
) -> None:
    cancelled_work.clear()
    async with started_app(probe) as app:
        pool = app.state.engine.sync_engine.pool
        hang_up = asyncio.Event()
        messages = [{"type": "http.request", "body": b"{}", "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            if messages:
                return messages.pop(0)
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = asgi_scope("POST", "/probe/slow-write", [(b"content-length", b"2")])
        in_transaction.clear()
        endpoint_connections.clear()
        returned: list[object] = []

        def record(dbapi_connection: object, *_: object) -> None:
            returned.append(dbapi_connection)

        for name in ("checkin", "invalidate", "close"):
            event.listen(pool, name, record)
        call = asyncio.create_task(app(scope, receive, send))
        await asyncio.wait_for(in_transaction.wait(), timeout=5)
        (connection,) = endpoint_connections  # the endpoint is inside its transaction
        assert connection not in returned
        hang_up.set()
        await asyncio.wait_for(call, timeout=5)  # finished well before its 30 s of work
        assert cancelled_work == ["slow-write"]
        assert sent == []  # nobody to answer
        assert connection in returned  # back to the pool (or discarded), not leaked
        async with http_client(app) as http:
            metrics = (await http.get("/metrics")).text
    lines = [line for line in log_lines() if line.get("path") == "/probe/slow-write"]
    assert [line["event"] for line in lines] == ["request_abandoned", "request"]
    assert lines[1]["status"] == 499  # logged as abandoned by its client, not as a 500
    # Counted as the access log says (a 4xx), not as a server error that would page someone.
    served = [line for line in metrics.splitlines() if 'handler="/probe/slow-write"' in line]
    totals = [line for line in served if line.startswith("http_requests_total")]
    assert totals == [
        'http_requests_total{handler="/probe/slow-write",method="POST",status="4xx"} 1.0'
    ]


@probe.get("/tasks")
async def tasks() -> list[str]:
    return [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]


@pytest.mark.usefixtures("migrated_database")
async def test_a_quick_request_starts_no_reader_of_its_own() -> None:
    # Watching for the client leaving costs a task per request; a request that finishes within
    # WATCH_AFTER_SECONDS (most of them) never needs one. Here the bound is 5 s, not 50 ms, so
    # that a loaded machine's pause cannot make this request a slow one.
    async with started_app(probe) as app, http_client(app) as client:
        assert (await client.get("/health/live")).status_code == 200  # builds the stack
        _find(app.middleware_stack, CancelOnDisconnectMiddleware).watch_after = 5
        running = (await client.get("/probe/tasks")).json()
    assert running, "the endpoint sees at least its own task"
    assert not [name for name in running if "pump" in name]


read_bodies: list[bytes] = []


@probe.post("/read-body")
async def read_body(request: Request) -> dict[str, int]:
    try:
        body = await request.body()
    except asyncio.CancelledError:
        cancelled_work.append("read-body")
        raise
    read_bodies.append(body)
    return {"read": len(body)}


@pytest.mark.usefixtures("migrated_database")
@pytest.mark.parametrize("leaves_after", [0.0, 0.2], ids=["before-the-watch", "after-it"])
async def test_a_client_that_leaves_during_its_upload_is_cancelled(
    leaves_after: float, log_lines: LogReader
) -> None:
    # Before the reader starts, the app reads the disconnect itself; after, the reader does.
    cancelled_work.clear()
    read_bodies.clear()
    async with started_app(probe) as app:
        first = {"type": "http.request", "body": b"{", "more_body": True}
        handed: list[Message] = []

        async def receive() -> Message:
            if not handed:
                handed.append(first)
                return first
            await asyncio.sleep(leaves_after)
            return {"type": "http.disconnect"}

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        scope = asgi_scope("POST", "/probe/read-body", [(b"content-length", b"10")])
        await asyncio.wait_for(app(scope, receive, send), timeout=5)
    assert cancelled_work == ["read-body"]
    assert read_bodies == []
    assert sent == []  # nobody to answer
    lines = [line for line in log_lines() if line.get("path") == "/probe/read-body"]
    assert [line["event"] for line in lines] == ["request_abandoned", "request"]
    assert lines[1]["status"] == 499


@pytest.mark.usefixtures("migrated_database")
async def test_a_client_that_stays_gets_its_answer() -> None:
    release.set()
    async with started_app(probe) as app, http_client(app) as client:
        assert (await client.get("/probe/slow")).status_code == 200


@pytest.mark.usefixtures("migrated_database")
async def test_password_endpoints_have_a_gate_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A login flood waits for Argon2 inside its slots; other requests must still get theirs.
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ADMISSION_QUEUE_LIMIT", "0")
    async with started_app(probe) as app, http_client(app) as client:
        assert (await client.get("/health/live")).status_code == 200  # builds the stack
        admission = _find(app.middleware_stack, AdmissionMiddleware)
        password_gate = admission._gate("/api/v1/auth/login")
        await password_gate.slots.acquire()  # the one login slot is busy hashing
        try:
            other = await client.get("/api/v1/users/me")  # default gate: still free
            login = await client.post("/api/v1/auth/login", data={"username": "a", "password": "b"})
        finally:
            password_gate.slots.release()
    assert other.status_code == 401  # admitted, then refused by auth
    assert login.status_code == 503  # its own gate is full


def _find(app: object, kind: type[Layer]) -> Layer:
    while not isinstance(app, kind):
        app = app.app  # type: ignore[attr-defined]
    return app


@probe.post("/two-queries")
async def two_queries(session: SessionDep) -> dict[str, int]:
    await session.execute(text("SELECT pg_sleep(0.02)"))
    await session.execute(text("SELECT 1"))
    return {"ok": 1}


@pytest.mark.usefixtures("migrated_database")
async def test_a_burst_beyond_the_pool_closes_no_connection_inside_a_request() -> None:
    # An overflow connection was closed at check-in, inside the request that used it: a
    # reconnect for the next burst, and a client leaving mid-close cancelled the close, which
    # the pool logged as `Exception closing connection` at ERROR (seen in `make bench`). The
    # default pool is fixed (DB_MAX_OVERFLOW=0): the admission gate absorbs bursts instead.
    async with started_app(probe, **QUIET_REDRIVE) as app:
        closed: list[object] = []
        event.listen(app.state.engine.sync_engine.pool, "close", lambda *args: closed.append(args))
        size = app.state.settings.DB_POOL_SIZE
        async with http_client(app) as http:
            for _ in range(2):  # the second burst finds every connection the first one opened
                burst = [http.post("/probe/two-queries") for _ in range(size * 3)]
                assert {r.status_code for r in await asyncio.gather(*burst)} == {200}
        opened = app.state.engine.sync_engine.pool.checkedin()
        assert closed == []
    assert opened == size
