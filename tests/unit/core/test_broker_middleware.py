"""The worker's middlewares: log context per task, and each run counted (SPEC §7)."""

from __future__ import annotations

import uuid

import pytest
import structlog
from taskiq import TaskiqMessage, TaskiqResult

from app.core.broker import LogContextMiddleware, TaskMetricsMiddleware
from tests.metrics import sample


def _message(**labels: str) -> TaskiqMessage:
    return TaskiqMessage(
        task_id="t-1", task_name="deposits.complete", labels=labels, args=[], kwargs={}
    )


def test_the_request_id_label_is_bound_for_the_task() -> None:
    structlog.contextvars.bind_contextvars(request_id="left-over", user_id="someone")
    LogContextMiddleware().pre_execute(_message(request_id="req-7f3a9c"))
    assert structlog.contextvars.get_contextvars() == {
        "task": "deposits.complete",
        "task_id": "t-1",
        "request_id": "req-7f3a9c",
    }


def test_a_scheduled_task_has_no_request_id() -> None:
    structlog.contextvars.bind_contextvars(request_id="left-over")
    LogContextMiddleware().pre_execute(_message())
    assert structlog.contextvars.get_contextvars() == {
        "task": "deposits.complete",
        "task_id": "t-1",
    }
    structlog.contextvars.clear_contextvars()


def test_each_run_is_counted_by_task_and_outcome_with_its_duration() -> None:
    task = f"test.metrics_{uuid.uuid4().hex[:8]}"
    message = TaskiqMessage(task_id="t-2", task_name=task, labels={}, args=[], kwargs={})
    middleware = TaskMetricsMiddleware()
    for failed, seconds in ((False, 0.02), (True, 0.7), (False, 0.03)):
        result: TaskiqResult[None] = TaskiqResult(
            is_err=failed,
            return_value=None,
            execution_time=seconds,
            error=RuntimeError("boom") if failed else None,
        )
        middleware.post_execute(message, result)
    assert sample("ledger_tasks_total", task=task, outcome="success") == 2
    assert sample("ledger_tasks_total", task=task, outcome="error") == 1
    assert sample("ledger_task_duration_seconds_count", task=task) == 3
    assert sample("ledger_task_duration_seconds_sum", task=task) == pytest.approx(0.75)
