"""The worker's broker and tasks (`python -m app.run_worker` runs it); the scheduler's schedule.

A worker owns what its tasks need (an engine, a session factory, the payment provider, the email
sender), created on start-up and closed on shut-down, like the API's lifespan. It also runs the
outbox relay: every `OUTBOX_POLL_SECONDS` it hands the tasks committed in `task_outbox` to the
broker, so a task is never lost between a commit and a Redis outage, and a deposit made while
no worker ran is completed as soon as one starts. The relay pauses once the stream's backlog
reaches `STREAM_HIGH_WATER` (checked before every batch): the backlog then waits in Postgres,
and the stream never reaches the length at which Redis would trim it (ADR 0026).

The scheduler (`python -m app.scheduler` runs `app.worker:scheduler`, exactly one) sends the
periodic jobs on their `schedule` labels (the clean-ups in app/auth/tasks.py and
app/idempotency/tasks.py, the deposits' sweeper in app/deposits/tasks.py); workers run them like
any other task.
"""

from __future__ import annotations

import asyncio
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import TaskiqEvents, TaskiqScheduler, TaskiqState
from taskiq.schedule_sources import LabelScheduleSource

# Each module's tasks register themselves with the broker when imported.
from app.auth import tasks as auth_tasks  # noqa: F401 - registers its tasks
from app.core.background import Background
from app.core.broker import STREAM_HIGH_WATER, broker
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_session_factory
from app.core.email import build_email_sender
from app.core.logging import configure_logging, get_logger
from app.core.metrics import BUSINESS, QUEUE_BACKLOG, PoolCollector, Union
from app.core.outbox import relay_while_room
from app.core.sentry import init_sentry
from app.deposits import tasks as deposits_tasks  # noqa: F401 - registers its tasks
from app.deposits.provider import build_provider
from app.idempotency import tasks as idempotency_tasks  # noqa: F401 - registers its tasks
from app.models import load_all_models

__all__ = ["broker", "scheduler"]

logger = get_logger(__name__)
# Every model, so the ORM resolves each foreign key (a deposit names users and accounts).
load_all_models()
# Periodic jobs come from the tasks' own `schedule` labels: nothing is stored, nothing pickled.
scheduler = TaskiqScheduler(broker=broker, sources=[LabelScheduleSource(broker)])


async def _send(task_name: str, arguments: dict[str, Any], request_id: str | None) -> None:
    task = broker.find_task(task_name)
    assert task is not None  # noqa: S101 - relay_once asks only for this broker's tasks
    kicker = task.kicker()
    if request_id is not None:
        kicker = kicker.with_labels(request_id=request_id)
    await kicker.kiq(**arguments)


async def _observed_backlog() -> int:
    depth = await broker.backlog()
    QUEUE_BACKLOG.set(depth)
    return depth


async def _relay_forever(state: TaskiqState, every: float) -> None:
    tasks = frozenset(broker.get_all_tasks())
    while True:
        try:
            sent = await relay_while_room(
                state.sessions,
                _send,
                tasks=tasks,
                backlog=_observed_backlog,
                high_water=STREAM_HIGH_WATER,
            )
            if sent:
                logger.info("outbox_relayed", tasks=sent)
        except Exception as exc:  # noqa: BLE001 - Redis or the DB is down: retry on the next tick
            logger.warning("outbox_relay_failed", error=type(exc).__name__)
        await asyncio.sleep(every)


def _serve_metrics(settings: Settings, engine: AsyncEngine) -> WSGIServer | None:
    """The worker's /metrics on HOST:WORKER_METRICS_PORT: the business counters and its pool.

    A port already taken (a second worker on one host) costs the metrics, not the worker.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Union(BUSINESS))
    registry.register(QUEUE_BACKLOG)
    registry.register(PoolCollector(engine, settings))
    try:
        server, _ = start_http_server(
            settings.WORKER_METRICS_PORT, addr=settings.HOST, registry=registry
        )
    except OSError as exc:
        logger.warning(
            "worker_metrics_unavailable", port=settings.WORKER_METRICS_PORT, error=str(exc)
        )
        return None
    return server


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def startup(state: TaskiqState) -> None:
    """Pools, the provider and the email sender for the tasks; the outbox relay."""
    settings = get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    init_sentry(settings)
    state.settings = settings  # what tasks hand on, as the API's dependencies do
    state.engine = create_engine(settings)
    state.sessions = create_session_factory(state.engine)
    state.provider = build_provider(settings)
    state.email = build_email_sender(settings)
    state.relay = Background(
        lambda: _relay_forever(state, settings.OUTBOX_POLL_SECONDS), name="outbox-relay"
    )
    state.metrics = _serve_metrics(settings, state.engine)
    logger.info(
        "worker_started",
        queue=settings.TASK_QUEUE,
        provider=settings.PSP_PROVIDER,
        metrics_port=settings.WORKER_METRICS_PORT if state.metrics else None,
    )


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def shutdown(state: TaskiqState) -> None:
    """Stop relaying, close the clients and the pools."""
    await state.relay.stop()
    await state.provider.aclose()
    await state.email.aclose()
    await state.engine.dispose()
    if state.metrics is not None:
        state.metrics.shutdown()
    logger.info("worker_stopped")
