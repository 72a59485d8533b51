"""LedgerStreamBroker on the real Redis: the stream keeps only unacknowledged work, and a dead
worker's message is taken over even when nothing new arrives (ADR 0026)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskiq import AckableMessage, BrokerMessage

from app.core import broker as broker_module
from app.core.broker import GONE_CONSUMER_IDLE_MS, LedgerStreamBroker
from tests.conftest import TEST_REDIS_URL, LogReader

IDLE_MS = 300


def _broker(queue: str) -> LedgerStreamBroker:
    return LedgerStreamBroker(
        url=TEST_REDIS_URL,
        queue_name=queue,
        consumer_group_name=f"{queue}:workers",
        consumer_name=f"worker-{uuid.uuid4().hex[:6]}",
        consumer_id="0",
        idle_timeout=IDLE_MS,
        xread_block=100,
        maxlen=1000,
    )


@pytest.fixture
async def queue() -> AsyncIterator[str]:
    name = f"ledger:test-broker:{uuid.uuid4().hex[:8]}"
    yield name
    async with Redis.from_url(TEST_REDIS_URL) as redis:
        await redis.delete(name)


async def _first(broker: LedgerStreamBroker, *, within: float) -> AckableMessage:
    async def read() -> AckableMessage:
        async for message in broker.listen():
            assert isinstance(message, AckableMessage)
            return message
        raise AssertionError("listen() ended")

    return await asyncio.wait_for(read(), timeout=within)


async def _kick(broker: LedgerStreamBroker, payload: bytes) -> None:
    await broker.kick(
        BrokerMessage(task_id=uuid.uuid4().hex, task_name="t", message=payload, labels={})
    )


async def test_an_acknowledged_message_leaves_the_stream(queue: str) -> None:
    broker = _broker(queue)
    await broker.startup()
    try:
        await _kick(broker, b"one")
        assert await broker.backlog() == 1
        message = await _first(broker, within=5)
        assert message.data == b"one"
        assert await broker.backlog() == 1  # read, still running: still counted
        await message.ack()  # type: ignore[misc]
        assert await broker.backlog() == 0
        async with Redis.from_url(TEST_REDIS_URL) as redis:
            pending = await redis.xpending(queue, f"{queue}:workers")
        assert pending["pending"] == 0
    finally:
        await broker.shutdown()


async def test_a_dead_workers_message_is_taken_over_with_no_new_message(queue: str) -> None:
    dead, alive = _broker(queue), _broker(queue)
    await dead.startup()
    await alive.startup()
    try:
        await _kick(dead, b"charge")
        taken = await _first(dead, within=5)  # read, then the worker "dies": never acknowledged
        assert taken.data == b"charge"
        # Nothing else is ever sent: taskiq-redis would reclaim only after reading a new one.
        redelivered = await _first(alive, within=IDLE_MS / 1000 + 5)
        assert redelivered.data == b"charge"
        await redelivered.ack()  # type: ignore[misc]
        assert await alive.backlog() == 0
    finally:
        await dead.shutdown()
        await alive.shutdown()


async def test_a_task_sent_before_any_worker_ever_ran_is_delivered(queue: str) -> None:
    sender = _broker(queue)
    await _kick(sender, b"early")  # the stream exists, no consumer group yet
    worker = _broker(queue)
    await worker.startup()
    try:
        assert (await _first(worker, within=5)).data == b"early"
    finally:
        await worker.shutdown()
        await sender.shutdown()


async def _consumers(queue: str) -> dict[str, int]:
    """The group's consumers, each with how many messages it holds."""
    async with Redis.from_url(TEST_REDIS_URL, decode_responses=True) as redis:
        found = await redis.xinfo_consumers(queue, f"{queue}:workers")
    return {consumer["name"]: consumer["pending"] for consumer in found}


async def test_consumers_that_are_gone_are_pruned_and_no_message_with_them(queue: str) -> None:
    broker = _broker(queue)
    await broker.startup()
    group = f"{queue}:workers"
    try:
        async with Redis.from_url(TEST_REDIS_URL) as redis:
            await redis.xgroup_createconsumer(queue, group, "gone")  # a restarted worker's
            await redis.xgroup_createconsumer(queue, group, broker.consumer_name)
            await _kick(broker, b"charge")
            # A worker that died holding a message: its name goes only once that is moved.
            await redis.xreadgroup(group, "died-holding", {queue: ">"}, count=1)
            await asyncio.sleep(1.5)
            await redis.xgroup_createconsumer(queue, group, "reading")  # a live one, just now
        assert await broker.prune_gone_consumers(idle_ms=1_000) == ["gone"]
        # Itself, however long idle, and every holder stay; the message is still there.
        assert await _consumers(queue) == {broker.consumer_name: 0, "died-holding": 1, "reading": 0}
        redelivered = await _first(broker, within=IDLE_MS / 1000 + 5)
        assert redelivered.data == b"charge"
        await redelivered.ack()  # type: ignore[misc]
        assert "died-holding" in await broker.prune_gone_consumers(idle_ms=1_000)
        assert broker.consumer_name in await _consumers(queue)
        assert await broker.backlog() == 0
    finally:
        await broker.shutdown()


async def test_a_starting_worker_prunes_what_has_been_gone_for_the_bound(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _broker(queue)
    await first.startup()
    async with Redis.from_url(TEST_REDIS_URL) as redis:
        await redis.xgroup_createconsumer(queue, f"{queue}:workers", "stopped")
    await first.shutdown()
    await asyncio.sleep(1.5)
    for bound_ms, left in [(GONE_CONSUMER_IDLE_MS, {"stopped": 0}), (1_000, {})]:
        # The default, an hour: a worker stopped a moment ago is kept. A bound it has passed:
        # the next start removes it.
        monkeypatch.setattr(broker_module, "GONE_CONSUMER_IDLE_MS", bound_ms)
        starting = _broker(queue)
        await starting.startup()
        await starting.shutdown()
        assert await _consumers(queue) == left


async def test_a_failed_prune_does_not_stop_a_worker_starting(
    queue: str, monkeypatch: pytest.MonkeyPatch, log_lines: LogReader
) -> None:
    async def refused(self: LedgerStreamBroker, *, idle_ms: int) -> list[str]:
        raise ResponseError("NOPERM this user has no permissions to run the 'xgroup' command")

    monkeypatch.setattr(LedgerStreamBroker, "prune_gone_consumers", refused)
    broker = _broker(queue)
    await broker.startup()
    try:
        await _kick(broker, b"still-works")
        assert (await _first(broker, within=5)).data == b"still-works"
    finally:
        await broker.shutdown()
    warnings = [line["error"] for line in log_lines() if line["event"] == "broker_prune_failed"]
    assert warnings == ["ResponseError"]
