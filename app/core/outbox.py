"""The transactional outbox: tasks recorded with the commit that needs them, relayed later.

A service that must start background work calls `enqueue(session, task_name, **arguments)`
inside the request's transaction: the row commits with the effect or not at all. The worker's
relay (`relay_once`) reads committed rows with `FOR UPDATE SKIP LOCKED`, hands each to the
broker and deletes it in the same transaction. A crash between the hand-over and the commit
sends the task again: at-least-once, which is why every task body is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.logging import get_logger
from app.core.models import TaskOutboxEntry

logger = get_logger(__name__)

# Hands one task (name, arguments, the request id that recorded it) to the broker; raises
# when the broker is unreachable (the row stays).
Send = Callable[[str, dict[str, Any], str | None], Awaitable[None]]
BATCH = 100


def _encoded(arguments: dict[str, str | int]) -> str:
    # One encoding for writing and for looking up: the same arguments, the same text.
    return json.dumps(arguments, sort_keys=True)


def enqueue(session: AsyncSession, task_name: str, **arguments: str | int) -> None:
    """Record a task to run once this transaction commits (ids and numbers only).

    The request being served, if any, is recorded with it: its id follows the task into the
    worker's log lines (app.core.broker.LogContextMiddleware).
    """
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.add(
        TaskOutboxEntry(task_name=task_name, arguments=_encoded(arguments), request_id=request_id)
    )


async def still_queued(
    session: AsyncSession, task_name: str, *, key: str, values: Collection[str]
) -> set[str]:
    """Those of `values` whose `task_name(key=value)` still waits here, not yet relayed.

    A periodic job that re-enqueues lost work asks this first: while the relay cannot run (no
    worker, or the broker down) it would otherwise add the same task again at every tick.
    """
    if not values:
        return set()
    by_text = {_encoded({key: value}): value for value in values}
    found = await session.scalars(
        select(TaskOutboxEntry.arguments).where(
            TaskOutboxEntry.task_name == task_name, TaskOutboxEntry.arguments.in_(by_text)
        )
    )
    return {by_text[text] for text in found}


async def relay_once(
    sessions: async_sessionmaker[AsyncSession], send: Send, *, tasks: Collection[str]
) -> int:
    """Hand every committed outbox row of the given `tasks` to the broker; how many were sent.

    Rows naming other tasks stay where they are: a worker of an older release leaves the new
    release's tasks to the workers that have their code.

    A failed send (the broker is down) stops the batch: the rows sent before it are deleted,
    the failed one and the rest stay for the next call, and the error is raised after the commit.
    """
    failure: Exception | None = None
    async with sessions() as session, session.begin():
        rows = (
            (
                await session.execute(
                    select(TaskOutboxEntry)
                    .where(TaskOutboxEntry.task_name.in_(tasks))
                    .order_by(TaskOutboxEntry.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        sent: list[int] = []
        for row in rows:
            try:
                await send(row.task_name, json.loads(row.arguments), row.request_id)
            except Exception as exc:  # noqa: BLE001 - re-raised below, once the sent rows are gone
                failure = exc
                break
            sent.append(row.id)
        if sent:
            await session.execute(delete(TaskOutboxEntry).where(TaskOutboxEntry.id.in_(sent)))
    if failure is not None:
        raise failure
    return len(sent)


async def relay_while_room(
    sessions: async_sessionmaker[AsyncSession],
    send: Send,
    *,
    tasks: Collection[str],
    backlog: Callable[[], Awaitable[int]],
    high_water: int,
) -> int:
    """Relay batch after batch while the broker's `backlog()` is under `high_water`; how many.

    Checked before every batch, so the stream holds at most `high_water + BATCH - 1` messages
    from the relay: after a long outage the outbox may hold far more than the stream's cap,
    and those wait here, in Postgres, rather than being trimmed from the stream unread.
    """
    total = 0
    while (depth := await backlog()) < high_water:
        sent = await relay_once(sessions, send, tasks=tasks)
        if not sent:
            return total
        total += sent
    logger.warning("outbox_relay_paused", backlog=depth, relayed=total)
    return total
