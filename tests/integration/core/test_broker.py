"""LedgerStreamBroker on the real Redis: the stream keeps only unacknowledged work, and a dead
worker's message is taken over even when nothing new arrives (ADR 0026)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from taskiq import AckableMessage, BrokerMessage

from app.core.broker import LedgerStreamBroker
from tests.conftest import TEST_REDIS_URL

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
