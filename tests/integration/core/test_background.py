"""A background loop stops when asked, even when redis-py loses the cancellation.

On Python 3.11 a cancel that lands as redis-py's send finishes is lost (CPython gh-86296): the
call returns as if the task had not been cancelled. The app's own client, on the real Redis,
is cancelled at every step of a command in turn. The first test says whether the interpreter
still loses cancels (on 3.12 it should not, and `Background` could then go); the second
cancels a `Background` loop at the same steps, and it must stop every time.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.background import Background, shielded
from app.core.config import get_settings
from app.core.redis import create_redis

LOSES_CANCELS = sys.version_info < (3, 12)
STEPS = 13  # event-loop steps a command takes here, and then some: the cancel lands in each
ROUNDS = 20


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(get_settings())
    yield client
    await client.aclose()


class Calls:
    """A loop of Redis calls that counts those returning although their task was cancelled."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.cancelled = False  # set just before the loop is cancelled
        self.lost = 0

    async def forever(self) -> None:
        while True:
            await self.redis.incr("background-test")
            if self.cancelled:
                self.lost += 1
            await asyncio.sleep(0.05)


async def _steps(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_cancel_during_a_redis_call_is_lost_on_this_python(redis: Redis) -> None:
    calls = Calls(redis)
    for step in range(STEPS * ROUNDS):
        calls.cancelled = False
        task = asyncio.create_task(calls.forever())
        await _steps(step % STEPS)
        calls.cancelled = True
        while not task.done():  # a lost cancel leaves the loop running: cancel again
            task.cancel()
            await asyncio.wait({task}, timeout=0.01)
        assert task.cancelled()
    assert (calls.lost > 0) == LOSES_CANCELS, calls.lost


async def test_a_background_loop_stops_although_the_cancel_was_lost(redis: Redis) -> None:
    calls = Calls(redis)
    for step in range(STEPS * ROUNDS):
        calls.cancelled = False
        loop = Background(calls.forever, name="test-loop")
        await _steps(step % STEPS)
        calls.cancelled = True
        async with asyncio.timeout(2):  # a lost cancel would leave it running for good
            await loop.stop()
    assert calls.lost == 0  # not one Redis call came back after the stop


async def test_a_stopping_loop_finishes_its_shielded_clean_up() -> None:
    finished: list[str] = []

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            with shielded():
                await asyncio.sleep(0.05)  # two awaits: each would be cancelled unshielded
                await asyncio.sleep(0)
                finished.append("clean-up")

    loop = Background(run, name="test-loop")
    await _steps(1)
    await loop.stop()
    assert finished == ["clean-up"]


async def test_a_loop_that_failed_is_logged_when_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def run() -> None:
        raise RuntimeError("boom")

    loop = Background(run, name="test-loop")
    await _steps(2)
    await loop.stop()  # does not raise: the caller still closes what else it holds
    assert "background_task_failed" in capsys.readouterr().err
