"""The drain state machine of `python -m app.server` (the e2e test covers a real process)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
import uvicorn

from app.core.lifecycle import is_draining, reset_draining
from app.server import DrainingServer


@pytest.fixture(autouse=True)
def _not_draining() -> Iterator[None]:
    reset_draining()
    yield
    reset_draining()


def exiting(draining: DrainingServer) -> bool:
    return draining.should_exit


def server(drain_seconds: float) -> DrainingServer:
    return DrainingServer(uvicorn.Config("app.main:app"), drain_seconds=drain_seconds)


async def test_the_first_signal_drains_then_exits_without_recording_the_signal() -> None:
    draining = server(drain_seconds=0.05)
    draining._loop = asyncio.get_running_loop()
    draining.handle_exit(signal.SIGTERM, None)
    assert is_draining()
    assert not exiting(draining)  # still serving during the drain
    await asyncio.sleep(0.2)
    assert exiting(draining)
    assert draining._captured_signals == []  # so uvicorn will not re-raise it: exit 0


async def test_a_second_signal_skips_the_drain_and_a_third_ctrl_c_forces() -> None:
    draining = server(drain_seconds=60)
    draining._loop = asyncio.get_running_loop()
    draining.handle_exit(signal.SIGTERM, None)
    draining.handle_exit(signal.SIGTERM, None)
    assert draining.should_exit
    assert not draining.force_exit
    draining.handle_exit(signal.SIGINT, None)
    assert draining.force_exit


def test_without_a_drain_period_shutdown_starts_at_once() -> None:
    immediate = server(drain_seconds=0)
    immediate.handle_exit(signal.SIGTERM, None)
    assert immediate.should_exit
    assert is_draining()
