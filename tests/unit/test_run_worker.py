"""`python -m app.run_worker` is taskiq's worker on our broker, with our logging, not taskiq's."""

from __future__ import annotations

import logging

import pytest
from taskiq.cli.worker.args import WorkerArgs

from app import run_worker


def test_it_runs_taskiqs_worker_on_our_broker_without_taskiqs_logging_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[WorkerArgs] = []

    def fake_run_worker(args: WorkerArgs) -> int | None:
        seen.append(args)
        # By now our pipeline is in place: the root logger writes through structlog's formatter.
        formatters = [type(h.formatter).__name__ for h in logging.getLogger().handlers]
        assert "ProcessorFormatter" in formatters, formatters
        return None

    monkeypatch.setattr(run_worker, "run_worker", fake_run_worker)
    assert run_worker.main(["--workers", "1", "--wait-tasks-timeout", "3"]) == 0
    (args,) = seen
    assert args.broker == "app.worker:broker"
    assert args.configure_logging is False  # no basicConfig: taskiq's lines stay JSON
    assert (args.workers, args.wait_tasks_timeout) == (1, 3.0)


def test_a_failing_worker_exit_status_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_worker, "run_worker", lambda _args: 3)
    assert run_worker.main([]) == 3
