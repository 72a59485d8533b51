"""Cache invalidations that survive Redis outages: recorded in Postgres, re-applied by everyone.

The fast path is unchanged: after a commit, `Invalidator.after_commit` bumps the scopes in
Redis before the response. When Redis misses the bump (ADR 0016):

1. this process *holds* the scopes at once (reads them from the database, never from Redis)
   and records them in `cache_invalidations` in a short transaction of its own, which also
   NOTIFYs every process;
2. every process holds the scopes it hears about, and its re-drive — every
   `CACHE_REDRIVE_SECONDS`, and at once on a notification — applies every recorded row to
   Redis and deletes it, so a dead process's misses are applied too; a scope is released only
   once no row for it is left;
3. a process that saw Redis fail reads nothing from Redis until a re-drive that started after
   the failure has applied everything recorded (`Cache.watch_failures`), and a process that
   starts does the same before its first cached read.

Commits whose scopes nobody claims (workers, the CLI) record them inside their own transaction
(`app.core.cache`), so they need nothing from this module. Assumes one Redis per database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.core.background import Background, shielded
from app.core.cache import NOTIFY_CHANNEL, Cache, record_invalidations
from app.core.logging import get_logger
from app.core.models import CacheInvalidation

logger = get_logger(__name__)


# Rows applied per pass: bounded memory, and a DELETE ... IN (...) well under the driver's limit
# of 32,767 bound parameters, however long Redis was away.
REDRIVE_BATCH = 5_000


class Invalidator:
    """Invalidates after commits and re-applies, in every process, what Redis missed."""

    def __init__(
        self,
        cache: Cache,
        sessions: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        *,
        interval_seconds: float,
    ) -> None:
        self._cache = cache
        self._sessions = sessions
        self._listen_url = engine.url
        self._interval = interval_seconds
        # Scopes being written to the table: a re-drive that reads it meanwhile cannot see them.
        self._recording: Counter[str] = Counter()
        # Scopes Redis missed that could not be recorded either (the database failed too).
        self._unrecorded: set[str] = set()
        # Scopes held since the running re-drive began: it must not release them.
        self._held_during_pass: set[str] = set()
        self._wake = asyncio.Event()
        self._loops: list[Background] = []
        self.listening = False

    async def start(self) -> None:
        """Start the re-drive and the listener; cached reads wait for the first re-drive."""
        self._cache.watch_failures()
        self._loops = [
            Background(self._redrive_forever, name="cache-redrive"),
            Background(self._listen_forever, name="cache-invalidation-listener"),
        ]

    async def stop(self) -> None:
        """Stop both loops. What is recorded stays recorded: the other processes apply it."""
        await asyncio.gather(*(loop.stop() for loop in self._loops))
        self._loops = []
        if self._unrecorded:
            # Redis and the database both failed for these: only the TTL bounds them now.
            logger.error("cache_invalidations_lost", scopes=sorted(self._unrecorded))

    async def after_commit(self, scopes: Collection[str]) -> None:
        """Invalidate what a commit changed; if Redis misses it, hold it and record it."""
        if not scopes or await self._cache.bump(*scopes):
            return
        self._hold(scopes)
        self._recording.update(scopes)
        try:
            await self._record(scopes)
        finally:
            self._recording.subtract(scopes)
            self._recording = +self._recording  # drop the zero counts

    def _hold(self, scopes: Collection[str]) -> None:
        self._cache.hold(*scopes)
        self._held_during_pass.update(scopes)

    async def _record(self, scopes: Collection[str]) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await session.run_sync(record_invalidations, scopes)
        except (SQLAlchemyError, OSError) as error:
            self._unrecorded.update(scopes)
            logger.error(
                "cache_invalidation_unrecorded", scopes=len(scopes), error=type(error).__name__
            )
        else:
            logger.warning("cache_invalidation_recorded", scopes=len(scopes))

    async def redrive(self) -> bool:
        """One pass: apply every recorded invalidation to Redis; True when none is left."""
        self._held_during_pass = set(self._recording)
        failures = self._cache.errors
        unrecorded = set(self._unrecorded)
        try:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(CacheInvalidation.id, CacheInvalidation.scope)
                        .order_by(CacheInvalidation.id)
                        .limit(REDRIVE_BATCH)
                    )
                ).all()
        except (SQLAlchemyError, OSError) as error:
            logger.warning("cache_redrive_failed", step="read", error=type(error).__name__)
            # Without the table, apply at least this process's own misses: none dies with it.
            if unrecorded and await self._cache.bump(*unrecorded, force=True):
                self._unrecorded -= unrecorded
            return False
        scopes = {scope for _, scope in rows} | unrecorded
        applied = await self._cache.bump(*scopes, force=True)
        if applied:
            self._unrecorded -= unrecorded
            if rows:
                await self._forget([row_id for row_id, _ in rows])
                logger.info("cache_invalidations_redriven", scopes=len(scopes))
        elif self._unrecorded:
            retry, self._unrecorded = self._unrecorded, set()
            await self._record(retry)
        outstanding = set() if applied else scopes
        self._cache.set_held(outstanding | self._unrecorded | self._held_during_pass)
        if applied and len(rows) == REDRIVE_BATCH:
            # A long outage left more rows than one pass takes: not caught up yet, go on now.
            self._wake.set()
            return False
        if applied:
            self._cache.caught_up(failures)
        return applied

    async def _forget(self, ids: list[int]) -> None:
        # Only the rows read before the bump: a row recorded since may not be covered by it.
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    delete(CacheInvalidation).where(CacheInvalidation.id.in_(ids))
                )
        except (SQLAlchemyError, OSError) as error:
            # They stay, and the next pass bumps them again: one needless miss each.
            logger.warning("cache_redrive_failed", step="delete", error=type(error).__name__)

    async def _redrive_forever(self) -> None:
        while True:
            try:
                await self.redrive()
            except Exception:  # the loop must outlive any one failure; logged with its trace
                logger.exception("cache_redrive_crashed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        # The row was committed before this arrived: a re-drive starting now will see it.
        self._hold(payload.split())
        self._wake.set()

    async def _listen_forever(self) -> None:
        # A connection of its own, outside the pool: it waits for notifications forever.
        engine = create_async_engine(self._listen_url, poolclass=NullPool)
        try:
            while True:
                try:
                    await self._listen(engine)
                except Exception as error:  # noqa: BLE001 - any failure: reconnect
                    logger.warning("cache_listener_failed", error=type(error).__name__)
                self.listening = False
                await asyncio.sleep(self._interval)
        finally:
            with shielded():
                await engine.dispose()

    async def _listen(self, engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            if driver is None:  # pragma: no cover - asyncpg always has one
                raise RuntimeError("no driver connection")
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _: lost.set())
            await driver.add_listener(NOTIFY_CHANNEL, self._heard)
            self.listening = True
            self._wake.set()  # anything recorded while nobody listened: read the table now
            await lost.wait()
