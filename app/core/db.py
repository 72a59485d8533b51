"""Database access: the declarative base, the async engine and the session factory (no HTTP here).

The one-transaction-per-request session dependency is in `app.core.dependencies`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, event, func, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, ORMExecuteState, Session, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import memoized_property
from sqlalchemy.util.queue import AsyncAdaptedQueue

from app.core.config import Settings

# Explicit constraint names: migrations stay reviewable and `alembic check` stays stable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint's text: `column` holds one of the enum's values (in their order)."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


class Base(DeclarativeBase):
    """Declarative base of every model; its MetaData carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """`created_at` / `updated_at`, set by the database clock (UTC, timezone-aware)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


T = TypeVar("T")


class FairQueue(asyncio.Queue[T]):
    """An asyncio queue whose getters are served in the order they came.

    `asyncio.Queue` lets a newcomer take an item put for a getter that has not run yet; that
    getter then goes to the *back* of the line. For the connection pool that means a request
    can wait behind every request that arrives after it: under a burst beyond the pool, the
    p99 of a database read was 5 to 16 times its median. Here an item put while getters wait is
    handed to the first of them, so no getter takes an item ahead of one already waiting.
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._waiting: deque[asyncio.Future[T]] = deque()

    async def get(self) -> T:
        """An item, after every getter that came before has had one.

        While getters wait the queue holds nothing (each item put went to one of them), so
        `get_nowait` cannot take an item ahead of them either.
        """
        if not self.empty():
            return super().get_nowait()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled (a pool timeout, a client gone) after the item was handed over, but
            # before running again: the item goes on to the next in line, not lost.
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(waiter)

    def put_nowait(self, item: T) -> None:
        """Hand `item` to the first getter still waiting, or keep it."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        super().put_nowait(item)


class _FairAdaptedQueue(AsyncAdaptedQueue[T]):
    @memoized_property
    def _queue(self) -> asyncio.Queue[T]:
        return FairQueue(maxsize=self.maxsize)


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool, with connections handed out first come, first served."""

    # Its log lines stay under `sqlalchemy.pool` (WARNING unless asked), as the stock pool's
    # do: under `app.` they would be INFO lines like "Pool recreating" at every dispose.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.FairAsyncQueuePool"
    _queue_class = _FairAdaptedQueue  # type: ignore[assignment]  # generic in its item type


def create_engine(settings: Settings) -> AsyncEngine:
    """The process-wide engine; the pool is bounded so a burst queues instead of piling up."""
    engine = create_async_engine(
        str(settings.DATABASE_URL),
        poolclass=FairAsyncQueuePool,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        # No pre-ping: with asyncpg it costs three round trips per checkout (BEGIN, ";",
        # ROLLBACK), a fifth of a payment's. `_discard_closed` below catches what it caught.
        pool_pre_ping=False,
        echo=settings.DB_ECHO,
        # Errors and echo show the statement, never its values: those are emails, password
        # hashes and token hashes, which must not reach a log line (or Sentry).
        hide_parameters=True,
        connect_args={
            "server_settings": {
                "application_name": settings.PROJECT_NAME,
                "statement_timeout": str(settings.DB_STATEMENT_TIMEOUT_MS),
            },
        },
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def _discard_closed(
    dbapi_connection: Any, connection_record: object, connection_proxy: object
) -> None:
    # A connection the server closed while it sat in the pool (a restart, pg_terminate_backend,
    # an idle timeout) has already been seen closing by asyncpg, on the event loop: checking
    # costs no round trip. Raising DisconnectionError makes the pool discard it and check out
    # (or open) another, so the request never sees the dead one. A connection that dies in the
    # instant between this check and its first statement still fails that request (ADR 0021).
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_session_factory(
    engine: AsyncEngine, *, sync_session_class: type[Session] = Session
) -> async_sessionmaker[AsyncSession]:
    """Sessions keep loaded objects usable after commit (no lazy reload in async code)."""
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=sync_session_class
    )


class ReadOnlySession(Session):
    """The session of a read (GET, HEAD): every statement is its own transaction; no writes.

    Its connections run in autocommit: no BEGIN and no COMMIT, two round trips of three for a
    one-query read. That loses no consistency: under READ COMMITTED (our level) each statement
    of a transaction sees its own snapshot anyway. What autocommit would lose is atomicity of
    writes, so a write raises `ReadOnlySessionError` before it reaches the database (ADR 0032).
    """


class ReadOnlySessionError(RuntimeError):
    """A write through a read request's session: a programming error (make it a POST)."""


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_statements_that_write(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("a read request's session cannot write (ADR 0032)")


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flushes_that_write(session: Session, context: object, instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError("a read request's session cannot write (ADR 0032)")


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads: autocommit connections of the same pool, writes refused."""
    return create_session_factory(
        engine.execution_options(isolation_level="AUTOCOMMIT"), sync_session_class=ReadOnlySession
    )


async def ping_database(engine: AsyncEngine, *, within_seconds: float) -> bool:
    """True when the database answers `SELECT 1` within `within_seconds` seconds."""
    try:
        async with asyncio.timeout(within_seconds):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"; the caller logs it
        return False
    return True
