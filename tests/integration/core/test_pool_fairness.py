"""The database pool hands out connections first come, first served (app.core.db.FairQueue).

SQLAlchemy's own asyncio pool often lets a request that returns a connection and asks again at
once overtake requests already waiting (asyncio.Queue's newcomers jump the line); how often
depends on timing, so the deterministic check of that is in tests/unit/core/test_fair_queue.py.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import FairAsyncQueuePool, create_engine

REQUESTS = 12


async def _acquisitions(engine: AsyncEngine) -> list[tuple[int, int]]:
    """Every request takes a connection twice in a row: in what order were they served?"""
    async with engine.connect(), engine.connect():
        pass  # both of the pool's connections open: nobody is served while connecting
    served: list[tuple[int, int]] = []

    async def request(number: int) -> None:
        for turn in (1, 2):  # the second time it comes back at once, as a busy client does
            async with engine.connect() as connection:
                served.append((turn, number))
                await connection.execute(text("SELECT 1"))

    await asyncio.gather(*(request(number) for number in range(REQUESTS)))
    return served


async def test_a_request_coming_back_for_a_connection_waits_behind_those_already_waiting(
    live_app: FastAPI,
) -> None:
    settings = live_app.state.settings.model_copy(update={"DB_POOL_SIZE": 2})
    engine = create_engine(settings)
    try:
        assert isinstance(engine.sync_engine.pool, FairAsyncQueuePool)
        # Its INFO lines ("Pool recreating" at each dispose) stay off, as the stock pool's.
        logger = engine.sync_engine.pool.logger
        assert isinstance(logger, logging.Logger)
        assert logger.name.startswith("sqlalchemy.pool.")
        served = await _acquisitions(engine)
    finally:
        await engine.dispose()
    # Everyone's first turn before anyone's second: nobody overtakes a request that waits.
    assert [turn for turn, _ in served] == [1] * REQUESTS + [2] * REQUESTS
    # And in the order they came.
    assert [number for turn, number in served if turn == 1] == list(range(REQUESTS))
