"""Database access: async engine, session factory, and the one-transaction-per-request session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, func, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.cache import take_stale
from app.core.config import Settings

if TYPE_CHECKING:  # at run time it comes from app.state; its module imports this one
    from app.core.invalidation import Invalidator

# Explicit constraint names: migrations stay reviewable and `alembic check` stays stable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every model; its MetaData carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """`created_at` / `updated_at`, set by the database clock (UTC, timezone-aware)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


def create_engine(settings: Settings) -> AsyncEngine:
    """The process-wide engine; the pool is bounded so a burst queues instead of piling up."""
    return create_async_engine(
        str(settings.DATABASE_URL),
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
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


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions keep loaded objects usable after commit (no lazy reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping_database(engine: AsyncEngine, *, within_seconds: float) -> bool:
    """True when the database answers `SELECT 1` within `within_seconds` seconds."""
    try:
        async with asyncio.timeout(within_seconds):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"; the caller logs it
        return False
    return True


def get_engine(request: Request) -> AsyncEngine:
    """The engine the lifespan opened."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, before the response.

    Declared with `scope="function"` (see SessionDep): FastAPI then runs the commit before it
    sends the response, so a failed commit becomes a 500 instead of a 2xx for lost work.
    Services may flush(); only this function commits. Plain commit-or-rollback: the endpoint
    returned, so it commits; anything raised rolls back (outcomes that must be kept are values,
    see `Refusal`). After the commit it invalidates the cache scopes the services marked
    stale (ADR 0016).
    """
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    invalidator: Invalidator = request.app.state.invalidator
    async with factory() as session:
        stale: set[str] = set()
        try:
            async with session.begin():
                yield session
                # Claimed before the commit, so it does not record them (ADR 0016): they are
                # invalidated right after it, still before the response.
                stale = take_stale(session)
        finally:
            # Also when COMMIT itself failed: one in doubt may have landed, and a needless
            # invalidation costs only a cache miss.
            await invalidator.after_commit(stale)


def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for the rare use case that must run its own short transactions.

    Login and the password change use it: neither may hold a pooled connection while Argon2 runs
    (ADR 0013).
    """
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
