"""The worker process: `taskiq worker app.worker:broker` (SPEC §3, §6).

It owns what its tasks need (an engine, a session factory, the payment provider), created on
start-up and closed on shut-down, like the API's lifespan. It also runs the outbox relay: every
`OUTBOX_POLL_SECONDS` it hands the tasks committed in `task_outbox` to the broker, so a task is
never lost between a commit and a Redis outage, and a deposit made while no worker ran is
completed as soon as one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from taskiq import TaskiqEvents, TaskiqState

from app.core.broker import broker
from app.core.config import get_settings
from app.core.db import create_engine, create_session_factory
from app.core.logging import configure_logging, get_logger
from app.core.outbox import relay_once
from app.deposits import tasks as deposits_tasks  # noqa: F401 - registers its tasks
from app.deposits.provider import FakeProvider
from app.models import load_all_models

__all__ = ["broker"]

logger = get_logger(__name__)
# Every model, so the ORM resolves each foreign key (a deposit names users and accounts).
load_all_models()


async def _send(task_name: str, arguments: dict[str, Any]) -> None:
    task = broker.find_task(task_name)
    if task is None:  # a row naming a task this code does not have: keep it, say so
        raise LookupError(f"unknown task {task_name!r} in the outbox")
    await task.kiq(**arguments)


async def _relay_forever(state: TaskiqState, every: float) -> None:
    while True:
        try:
            while sent := await relay_once(state.sessions, _send):
                logger.info("outbox_relayed", tasks=sent)
        except Exception as exc:  # noqa: BLE001 - Redis or the DB is down: retry on the next tick
            logger.warning("outbox_relay_failed", error=type(exc).__name__)
        await asyncio.sleep(every)


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def startup(state: TaskiqState) -> None:
    """Pools and the provider for the tasks; the outbox relay."""
    settings = get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    state.engine = create_engine(settings)
    state.sessions = create_session_factory(state.engine)
    state.provider = FakeProvider(latency_ms=settings.PSP_FAKE_LATENCY_MS)
    state.relay = asyncio.create_task(_relay_forever(state, settings.OUTBOX_POLL_SECONDS))
    logger.info("worker_started", queue=settings.TASK_QUEUE)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def shutdown(state: TaskiqState) -> None:
    """Stop relaying, close the pools."""
    state.relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await state.relay
    await state.engine.dispose()
    logger.info("worker_stopped")
