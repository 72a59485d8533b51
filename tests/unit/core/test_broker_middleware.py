"""LogContextMiddleware: a task's log lines carry its name, its id and the request's id."""

from __future__ import annotations

import structlog
from taskiq import TaskiqMessage

from app.core.broker import LogContextMiddleware


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
