"""FastAPI dependencies of core: settings, a request's session (or factory), cache, hasher, page.

The HTTP side of `app.core.db`, `app.core.cache` and `app.core.pagination`,
which stay free of FastAPI so that domain code (services, repositories, models) can use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Query, Request
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import Cache, take_stale
from app.core.config import Settings
from app.core.pagination import MAX_PAGE_SIZE, PageParams, decode_cursor
from app.core.security import PasswordHasher

if TYPE_CHECKING:  # at run time it comes from app.state; its module imports the cache
    from app.core.invalidation import Invalidator


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with: what domain code is handed, never reads itself."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


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
    async with factory() as session:  # leaving it rolls back whatever was not committed
        stale: set[str] = set()
        try:
            yield session
            # Claimed before the commit, so it does not record them (ADR 0016): they are
            # invalidated right after it, still before the response.
            stale = take_stale(session)
            # The transaction begins with the first statement: a request served from the
            # cache never checks out a connection, and has nothing to commit.
            if session.in_transaction():
                try:
                    await session.commit()
                except BaseException:
                    # As `session.begin()` would: a failed COMMIT leaves the transaction
                    # open on the connection, holding its row locks, until rolled back.
                    await session.rollback()
                    raise
        finally:
            # Also when COMMIT itself failed: one in doubt may have landed, and a needless
            # invalidation costs only a cache miss.
            await invalidator.after_commit(stale)


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for the rare use case that must run its own short transactions.

    Login and the password change use it (neither may hold a pooled connection while Argon2
    runs, ADR 0013), and the refresh, whose revocation of a reused family must commit although
    the request fails (ADR 0018).
    """
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]


async def get_cache(request: Request) -> Cache:
    """The cache the lifespan created."""
    cache: Cache = request.app.state.cache
    return cache


CacheDep = Annotated[Cache, Depends(get_cache)]


async def get_password_hasher(request: Request) -> PasswordHasher:
    """The process's Argon2id hasher and its bounded thread pool, owned by the lifespan."""
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
    cursor: Annotated[
        str | SkipJsonSchema[None],
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    """Dependency: the page size and the decoded cursor of a list endpoint."""
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageParamsDep = Annotated[PageParams, Depends(page_params)]
