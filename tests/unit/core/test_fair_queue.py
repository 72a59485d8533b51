"""The pool's queue serves waiting requests in the order they came (app.core.db.FairQueue)."""

from __future__ import annotations

import asyncio

import pytest

from app.core.db import FairQueue


async def _served(queue: asyncio.Queue[int]) -> list[str]:
    """Two getters wait; a third comes just as an item is put: who gets the three items?"""
    served: list[str] = []

    async def get(name: str) -> None:
        await queue.get()
        served.append(name)

    first = asyncio.create_task(get("first"))
    second = asyncio.create_task(get("second"))
    await asyncio.sleep(0)  # both wait now
    newcomer = asyncio.create_task(get("newcomer"))  # runs before the woken getter does
    queue.put_nowait(1)
    await asyncio.sleep(0)
    queue.put_nowait(2)
    await asyncio.sleep(0)
    queue.put_nowait(3)
    await asyncio.gather(first, second, newcomer)
    return served


async def test_asyncio_queue_lets_a_newcomer_jump_the_line() -> None:
    # The behaviour FairQueue replaces; if asyncio ever changes it, this says so.
    assert await _served(asyncio.Queue()) != ["first", "second", "newcomer"]


async def test_the_fair_queue_serves_getters_in_the_order_they_came() -> None:
    assert await _served(FairQueue()) == ["first", "second", "newcomer"]


async def test_a_free_item_is_taken_at_once_when_nobody_waits() -> None:
    queue: FairQueue[int] = FairQueue()
    queue.put_nowait(7)
    assert queue.get_nowait() == 7
    queue.put_nowait(8)
    assert await queue.get() == 8
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_an_item_put_while_a_getter_waits_is_its_own_not_a_newcomers() -> None:
    queue: FairQueue[int] = FairQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)  # handed to the waiting getter, not left in the queue
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    assert await waiting == 1


async def test_an_item_handed_to_a_getter_cancelled_before_it_ran_goes_to_the_next() -> None:
    queue: FairQueue[int] = FairQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)  # the first getter's, but it is cancelled before it resumes
    first.cancel()
    assert await asyncio.wait_for(second, 1) == 1
    assert first.cancelled()
    assert queue.empty()


async def test_a_timed_out_getter_leaves_the_line_and_loses_nothing() -> None:
    queue: FairQueue[int] = FairQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait(5)  # nobody waits any more: it stays in the queue
    assert queue.qsize() == 1
    assert queue.get_nowait() == 5
