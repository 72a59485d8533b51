"""The transactional outbox: a task row commits with its effect and leaves only once sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.models import TaskOutboxEntry
from app.core.outbox import enqueue, relay_once, relay_while_room


class BrokerDownError(Exception):
    pass


async def _own_rows(sessions: async_sessionmaker[AsyncSession], marker: str) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(TaskOutboxEntry.task_name)
            .where(TaskOutboxEntry.arguments.contains(marker))
            .order_by(TaskOutboxEntry.id)
        )
        return list(rows)


async def test_a_rolled_back_transaction_leaves_no_task(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session:
        await session.begin()
        enqueue(session, "test.task", marker=marker)
        await session.flush()  # written inside the transaction…
        await session.rollback()  # …which then fails: the task goes with it
    assert await _own_rows(sessions, marker) == []


async def test_the_relay_sends_committed_tasks_and_deletes_only_what_was_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session, session.begin():
        for name in ("test.first", "test.broker_fails_here", "test.third"):
            enqueue(session, name, marker=marker)
    sent: list[tuple[str, dict[str, Any]]] = []
    down = True
    tasks = {"test.first", "test.broker_fails_here", "test.third"}

    async def send(task_name: str, arguments: dict[str, Any], _request_id: str | None) -> None:
        if task_name == "test.broker_fails_here" and down:
            raise BrokerDownError
        sent.append((task_name, arguments))

    with pytest.raises(BrokerDownError):
        await relay_once(sessions, send, tasks=tasks)
    # Sent before the failure: gone. The failed one and those after it: kept, in order.
    assert ("test.first", {"marker": marker}) in sent
    assert await _own_rows(sessions, marker) == ["test.broker_fails_here", "test.third"]

    down = False  # the broker is back
    while await relay_once(sessions, send, tasks=tasks):
        pass
    assert await _own_rows(sessions, marker) == []
    ours = [name for name, arguments in sent if arguments == {"marker": marker}]
    assert ours == ["test.first", "test.broker_fails_here", "test.third"]


async def test_a_task_this_worker_does_not_know_stays_for_one_that_does(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session, session.begin():
        enqueue(session, "test.from_a_newer_release", marker=marker)
        enqueue(session, "test.known", marker=marker)
    sent: list[str] = []

    async def send(task_name: str, arguments: dict[str, Any], _request_id: str | None) -> None:
        sent.append(task_name)

    assert await relay_once(sessions, send, tasks={"test.known"}) == 1
    assert sent == ["test.known"]
    assert await _own_rows(sessions, marker) == ["test.from_a_newer_release"]
    assert await relay_once(sessions, send, tasks={"test.from_a_newer_release"}) == 1
    assert await _own_rows(sessions, marker) == []


async def test_the_arguments_travel_as_json(sessions: async_sessionmaker[AsyncSession]) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session, session.begin():
        enqueue(session, "test.json", marker=marker, count=3)
    async with sessions() as session:
        stored = await session.scalar(
            select(TaskOutboxEntry.arguments).where(TaskOutboxEntry.arguments.contains(marker))
        )
        assert stored is not None
        assert json.loads(stored) == {"marker": marker, "count": 3}
    async with sessions() as session, session.begin():
        await session.execute(
            delete(TaskOutboxEntry).where(TaskOutboxEntry.arguments.contains(marker))
        )
        left = await session.scalar(
            select(func.count())
            .select_from(TaskOutboxEntry)
            .where(TaskOutboxEntry.arguments.contains(marker))
        )
        assert left == 0


async def test_the_request_that_recorded_a_task_is_handed_on_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session, session.begin():
        with structlog.contextvars.bound_contextvars(request_id="req-7f3a9c"):
            enqueue(session, "test.in_a_request", marker=marker)
        enqueue(session, "test.outside_any_request", marker=marker)
    handed: dict[str, str | None] = {}

    async def send(task_name: str, arguments: dict[str, Any], request_id: str | None) -> None:
        if arguments.get("marker") == marker:
            handed[task_name] = request_id

    tasks = {"test.in_a_request", "test.outside_any_request"}
    while await relay_once(sessions, send, tasks=tasks):
        pass
    assert handed == {"test.in_a_request": "req-7f3a9c", "test.outside_any_request": None}


async def test_the_relay_stops_at_the_streams_high_water_mark_and_leaves_the_rest_here(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After a long outage the outbox holds more than the stream may: the rest waits here."""
    marker = uuid.uuid4().hex
    name = f"test.backlog_{marker}"
    async with sessions() as session, session.begin():
        for number in range(250):
            enqueue(session, name, marker=marker, number=number)
    stream: list[dict[str, Any]] = []  # what the broker holds; nothing is consumed meanwhile

    async def send(_task_name: str, arguments: dict[str, Any], _request_id: str | None) -> None:
        stream.append(arguments)

    async def backlog() -> int:
        return len(stream)

    sent = await relay_while_room(sessions, send, tasks={name}, backlog=backlog, high_water=150)
    assert sent == len(stream) == 200  # checked before each batch of 100: 0 → 100 → 200, stop
    assert len(await _own_rows(sessions, marker)) == 50

    stream.clear()  # the workers caught up
    assert (
        await relay_while_room(sessions, send, tasks={name}, backlog=backlog, high_water=150) == 50
    )
    assert await _own_rows(sessions, marker) == []
