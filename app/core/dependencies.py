"""FastAPI dependencies of core: settings, a request's session (or factory), cache, hasher, page.

The HTTP side of `app.core.db`, `app.core.cache` and `app.core.pagination`,
which stay free of FastAPI so that domain code (services, repositories, models) can use them.
"""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Query, Request
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import Cache, take_stale
from app.core.config import Settings
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams, decode_cursor
from app.core.security import PasswordHasher

if TYPE_CHECKING:  # at run time it comes from app.state; its module imports the cache
    from app.core.invalidation import Invalidator


def app_settings(request: Request) -> Settings:
    """The settings the app was created with: what domain code is handed, never reads itself."""
    settings: Settings = request.app.state.settings
    return settings


async def get_app_settings(request: Request) -> Settings:
    """Dependency: `app_settings`."""
    return app_settings(request)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# Where the request's session stand-in is kept: one per request, whoever asks for it.
_SESSION = "ledger.request_session"
# Where FastAPI keeps the exit stack of `scope="function"` dependencies: it unwinds after the
# endpoint returned (and its answer was serialized), before the response is sent.
_FUNCTION_STACK = "fastapi_function_astack"
_READS = frozenset({"GET", "HEAD"})


class _RequestSession:
    """The request's session, made on first use: a request that never touches it pays nothing.

    Stands in for the `AsyncSession` (every attribute is the real session's). The first use
    opens the session and pushes its end onto FastAPI's exit stack of function-scoped
    dependencies, where `Depends(..., scope="function")` would have put a generator's: the
    commit still runs before the response is sent, and sees whether the endpoint raised
    (ADR 0031). A cache hit never makes the session, nor pays the generator machinery.
    """

    __slots__ = ("_request", "_session")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._session: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        session = self._session
        if session is None:
            session = self._open()
        return getattr(session, name)

    def _open(self) -> AsyncSession:
        request = self._request
        stack = request.scope.get(_FUNCTION_STACK)
        if not isinstance(stack, AsyncExitStack):
            # Without it nothing would commit: fail loudly (a FastAPI upgrade, not a request).
            raise RuntimeError(f"no {_FUNCTION_STACK} in the request scope: cannot commit")
        # A read gets a session without BEGIN and COMMIT, which refuses writes (ADR 0032).
        factory: async_sessionmaker[AsyncSession] = (
            request.app.state.read_session_factory
            if request.scope["method"] in _READS
            else request.app.state.session_factory
        )
        invalidator: Invalidator = request.app.state.invalidator
        session = self._session = factory()
        stack.push_async_exit(functools.partial(_end_transaction, session, invalidator))
        return session


async def _end_transaction(
    session: AsyncSession,
    invalidator: Invalidator,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback: TracebackType | None,
) -> bool:
    """Commit if the endpoint returned, roll back if anything raised; then invalidate, close."""
    stale: set[str] = set()
    try:
        if exc_type is None:
            # Claimed before the commit, so it does not record them (ADR 0016): they are
            # invalidated right after it, still before the response.
            stale = take_stale(session)
            # The transaction begins with the first statement: a session that only read from
            # the cache never checked out a connection, and has nothing to commit.
            if session.in_transaction():
                try:
                    await session.commit()
                except BaseException:
                    # As `session.begin()` would: a failed COMMIT leaves the transaction
                    # open on the connection, holding its row locks, until rolled back.
                    await session.rollback()
                    raise
    finally:
        try:
            # Also when COMMIT itself failed: one in doubt may have landed, and a needless
            # invalidation costs only a cache miss.
            await invalidator.after_commit(stale)
        finally:
            # As leaving `async with session` does: closing rolls back whatever was not
            # committed, and is finished even if the request is cancelled meanwhile.
            await session.__aexit__(exc_type, exc, traceback)
    return False  # an exception from the endpoint goes on to the error handlers


def request_session(request: Request) -> AsyncSession:
    """The request's one session (see `get_session`): the same object however often asked.

    For a dependency that needs the session without declaring `SessionDep` (each declared
    dependency costs FastAPI several microseconds per request, issue 14).
    """
    session = request.scope.get(_SESSION)
    if session is None:
        session = request.scope[_SESSION] = _RequestSession(request)
    return cast(AsyncSession, session)


async def get_session(request: Request) -> AsyncSession:
    """One transaction per request: committed when the endpoint returns, before the response.

    Services may flush(); only the request's end commits. Plain commit-or-rollback: the
    endpoint returned, so it commits; anything raised rolls back (outcomes that must be kept
    are values, see `Refusal`). After the commit it invalidates the cache scopes the services
    marked stale (ADR 0016). The session is made on first use (`_RequestSession`, ADR 0031).
    """
    return request_session(request)


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for the rare use case that must run its own short transactions.

    Login and the password change use it (neither may hold a pooled connection while Argon2
    runs, ADR 0013), and the refresh, whose revocation of a reused family must commit although
    the request fails (ADR 0018).
    """
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]


def app_cache(request: Request) -> Cache:
    """The cache the lifespan created."""
    cache: Cache = request.app.state.cache
    return cache


async def get_cache(request: Request) -> Cache:
    """Dependency: `app_cache`."""
    return app_cache(request)


CacheDep = Annotated[Cache, Depends(get_cache)]


async def get_password_hasher(request: Request) -> PasswordHasher:
    """The process's Argon2id hasher and its bounded thread pool, owned by the lifespan."""
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | SkipJsonSchema[None],
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    """Dependency: the page size and the decoded cursor of a list endpoint."""
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageParamsDep = Annotated[PageParams, Depends(page_params)]
