"""Periodic clean-ups delete in batches, each batch a transaction of its own.

One `DELETE` of everything expired is fine while little has expired. After the scheduler or the
workers were away for days, or at scale, it is millions of rows in one transaction: it runs past
the task's timeout, is cancelled, rolls back, and the next run tries the same again, so the
table never shrinks. In batches, every batch that finished stays done, and a run stops when its
time budget is spent, leaving the rest to the next run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Rows per transaction: each a short statement on the expiry index (tens of milliseconds).
CLEANUP_BATCH = 5_000

DeleteBatch = Callable[[AsyncSession, int], Awaitable[int]]


async def delete_in_batches(
    sessions: async_sessionmaker[AsyncSession],
    delete_batch: DeleteBatch,
    *,
    budget_seconds: float,
    batch_size: int = CLEANUP_BATCH,
) -> tuple[int, bool]:
    """Run `delete_batch(session, batch_size)` until it deletes fewer rows or the budget is spent.

    `delete_batch` deletes at most that many rows and says how many. At least one batch runs.
    Returns the rows deleted and whether some may be left (the budget ran out first).
    """
    deadline = time.monotonic() + budget_seconds
    deleted = 0
    while True:
        async with sessions() as session, session.begin():
            count = await delete_batch(session, batch_size)
        deleted += count
        if count < batch_size:
            return deleted, False
        if time.monotonic() >= deadline:
            return deleted, True
