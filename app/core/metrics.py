"""Prometheus metrics (SPEC §7): the business counters, the DB pool, and how they are served.

RED per route template: prometheus-fastapi-instrumentator's series (`app.core.http_metrics`).
The counters here are counted where the events happen, in the API and in the worker alike,
and each process serves its own: the API at `GET /metrics`, the worker on `WORKER_METRICS_PORT`.

Every label value comes from a small fixed set — an outcome, a task name, a limit's name, an
endpoint's route template — never a user, account or request id, nor a raw path: a label per id
would make a new time series per customer and exhaust Prometheus.

One process per replica (ADR 0010), so no multiprocess mode: the values live in this process.
The business metrics sit in one registry of their own (`BUSINESS`), registered once at import;
each app made by `create_app()` has a registry for its HTTP metrics and its pool, so the tests
can build many apps in one process without "duplicated time series" errors. Each endpoint
serves one registry, which includes `BUSINESS` through a `Union` collector.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from app.core.config import Settings

BUSINESS = CollectorRegistry(auto_describe=True)

PAYMENTS = Counter(
    "ledger_payments",
    "Payments by outcome: succeeded, or the refusal's code (insufficient_funds, …).",
    ["outcome"],
    registry=BUSINESS,
)
DEPOSITS = Counter(
    "ledger_deposits",
    "Deposits finished, by outcome: succeeded or failed.",
    ["outcome"],
    registry=BUSINESS,
)
IDEMPOTENT_REPLAYS = Counter(
    "ledger_idempotent_replays",
    "Answers replayed from a stored Idempotency-Key outcome, by endpoint (method and route).",
    ["endpoint"],
    registry=BUSINESS,
)
RATE_LIMITED = Counter(
    "ledger_rate_limited",
    "Requests refused with 429, by the limit that refused them.",
    ["limit"],
    registry=BUSINESS,
)
CACHE_REQUESTS = Counter(
    "ledger_cache_requests",
    "Cache reads by cache (account, user) and result: hit, miss, or error (Redis not used).",
    ["cache", "result"],
    registry=BUSINESS,
)
TASKS = Counter(
    "ledger_tasks",
    "Task runs in the worker, by task and outcome: success or error.",
    ["task", "outcome"],
    registry=BUSINESS,
)
TASK_DURATION = Histogram(
    "ledger_task_duration_seconds",
    "How long each task run took, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=BUSINESS,
)


# The worker's alone (its endpoint registers it): the stream's length as the relay last saw it.
QUEUE_BACKLOG = Gauge(
    "ledger_queue_backlog",
    "Task messages in the Redis stream, unread or running (the relay's last look).",
    registry=None,
)


class PoolCollector(Collector):
    """The engine's pool as gauges, read at scrape time: connections in use, and the pool size."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.capacity = settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """`ledger_db_pool_in_use` and `ledger_db_pool_size` (size includes the overflow cap)."""
        pool = self.engine.sync_engine.pool
        in_use = GaugeMetricFamily(
            "ledger_db_pool_in_use", "Database connections checked out of the pool now."
        )
        size = GaugeMetricFamily(
            "ledger_db_pool_size",
            "Database connections the pool may hold at most (its size plus its overflow).",
        )
        in_use.add_metric([], pool.checkedout() if isinstance(pool, QueuePool) else 0)
        size.add_metric([], self.capacity)
        yield in_use
        yield size


class Union(Collector):
    """Every metric of other registries, for one endpoint that serves them together."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        """What each registry collects, in order."""
        for registry in self.registries:
            yield from registry.collect()


_AFTER_COMMIT = "ledger_metrics_after_commit"


def count_after_commit(session: AsyncSession, counter: Counter) -> None:
    """Count `counter` once this session's transaction commits; never if it rolls back.

    A business counter says what happened to the money: a payment counted before a commit that
    then failed would be a payment that never was.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(counter)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter in session.info.pop(_AFTER_COMMIT, ()):
        counter.inc()


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
