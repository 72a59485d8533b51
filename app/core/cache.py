"""Cache-aside on Redis with generation keys: never stale after a commit, fail-open.

How a read works (`Cache.get_or_load`):

1. One round trip (a Lua script) fetches the scope's *generation* and the value stored under
   `<namespace>:<scope>:<name>:g<generation>`. An entry can also be read ahead, in another
   module's round trip (`plan_prefetch`, `serve_prefetched`): the rate-limit middleware reads
   the caller's principal in its own script, so an authenticated request pays one round trip
   before its handler, not two (ADR 0022). The same checks apply when the entry is used.
2. Hit: done. Miss: load from the database — once per process however many requests ask at
   the same time (single flight) — and store it under the generation read in step 1, with a
   TTL as a safety net. A generation key outlives every entry stored under it (a store
   extends it): were it to expire first, its counter would restart and reach numbers whose
   old entries still live.

How a write invalidates: the service calls `mark_stale(session, scope)`; after the request's
transaction commits, the session dependency bumps the scope's generation (`INCR`). Every
later read looks under the new generation, so a read right after a write is never stale —
and a slow reader that loaded old rows before the commit can only store them under the old
generation, which nobody reads any more.

Redis down or slow (short socket timeouts): reads go to the database and the failure is
logged and counted; the API keeps serving. A bump that Redis misses is not dropped (ADR 0016):
`app.core.invalidation` records it in Postgres, and until it is applied every process *holds*
the scope (reads it from the database, `hold`), and a process that saw Redis fail reads
nothing from Redis until its re-drive has caught up (`watch_failures`). A commit whose scopes
nobody claims with `take_stale` (a worker, the CLI) records them in its own transaction.

The namespace carries a schema version: bump `CACHE_VERSION` when a cached shape changes, and
old entries are simply never read again.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Text, column, event, func, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.logging import get_logger
from app.core.metrics import CACHE_REQUESTS
from app.core.redis import RedisBreaker, is_local_saturation

logger = get_logger(__name__)

CACHE_VERSION = 1
NAMESPACE = f"ledger:v{CACHE_VERSION}:cache"
_STALE_SCOPES = "stale_cache_scopes"

# The table is declared in app/core/models.py (for Alembic); this module sits below the models
# in the import graph, so it writes through a lightweight description of the same table.
INVALIDATIONS = table("cache_invalidations", column("scope", Text))
# Postgres LISTEN/NOTIFY channel: every process hears a recorded invalidation at its commit.
NOTIFY_CHANNEL = "ledger_cache_invalidations"
_NOTIFY_PAYLOAD_BYTES = 7900  # Postgres refuses payloads of 8000 bytes or more

# How a script reads entries, in Lua, for `get_or_load` and for other modules' scripts that read
# entries ahead (`Prefetch`): KEYS[first..] are generation keys, ARGV[first_arg..] the matching
# value key prefixes; appends {generation, value or false} for each to `reply`.
READ_ENTRIES_LUA = """
local function read_entries(first, first_arg, reply)
    for i = first, #KEYS do
        local generation = redis.call('GET', KEYS[i]) or '0'
        reply[#reply + 1] = generation
        reply[#reply + 1] = redis.call('GET', ARGV[first_arg + i - first] .. generation)
    end
    return reply
end
"""
_GET_SCRIPT = READ_ENTRIES_LUA + "return read_entries(1, 1, {})"
# KEYS[1]: the value key; KEYS[2]: its scope's generation key. ARGV: the value, its TTL, the
# generation's TTL. A generation key that exists is kept alive at least as long as the entry:
# were it to expire first, the next bump would count from 1 again and reach, as a new
# generation, a number whose old entries still live (issue 14's review).
_STORE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
"""
# KEYS: generation keys to move on; ARGV[1]: their TTL in seconds. One call, not a pipeline of
# INCR and EXPIRE per scope: redis-py spends nearly twice the CPU on a pipeline (issue 14).
_BUMP_SCRIPT = """
for i = 1, #KEYS do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return #KEYS
"""

Entry = tuple[str, str]  # (scope, name)
# Entries read ahead for the running request: entry -> (generation, stored value or None).
Prefetched = dict[Entry, tuple[bytes, bytes | None]]
# Set by `serve_prefetched` for the length of one request: `get_or_load` is called from domain
# services, which are handed the process's Cache and never see the request (ADR 0022).
_prefetched: ContextVar[Prefetched | None] = ContextVar("cache_prefetched", default=None)

Loader = Callable[[], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Prefetch:
    """Cache entries for another module's script to read: pass `keys` as KEYS, `prefixes` as ARGV.

    The script reads them with `READ_ENTRIES_LUA`; `results` turns its replies into what
    `serve_prefetched` serves.
    """

    entries: tuple[Entry, ...]
    keys: tuple[str, ...]  # the generation keys
    prefixes: tuple[str, ...]  # the value key prefixes, one per generation key

    def results(self, replies: Sequence[Any]) -> Prefetched:
        """The entries and their (generation, value) from the script's flat replies."""
        return {entry: (replies[2 * i], replies[2 * i + 1]) for i, entry in enumerate(self.entries)}


@contextmanager
def serve_prefetched(prefetched: Prefetched | None) -> Iterator[None]:
    """While the block runs (one request), `get_or_load` serves these entries without Redis."""
    token = _prefetched.set(prefetched)
    try:
        yield
    finally:
        # Anything the request spawned shares the dict: after the request, nobody reads it.
        if prefetched:
            prefetched.clear()
        _prefetched.reset(token)


@functools.cache
def _counted(cache: str, result: str) -> Any:
    """The `ledger_cache_requests_total` child of one (cache, result), looked up once.

    Its labels are a handful of fixed words, and labels() costs a lock and a dict per read.
    """
    return CACHE_REQUESTS.labels(cache=cache, result=result)


class Cache:
    """A namespaced cache-aside helper over the shared Redis client."""

    def __init__(
        self, redis: Redis, *, ttl_seconds: int, breaker: RedisBreaker | None = None
    ) -> None:
        self._redis = redis
        self._breaker = breaker or RedisBreaker(open_seconds=0)
        self._ttl = ttl_seconds
        # Generations outlive their entries: a bump, or a store, gives the key this much.
        self._generation_ttl = ttl_seconds * 10
        self._get = redis.register_script(_GET_SCRIPT)
        self._store_entry = redis.register_script(_STORE_SCRIPT)
        self._bump = redis.register_script(_BUMP_SCRIPT)
        self._in_flight: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        # Scopes with an invalidation that Redis has not applied yet: read from the database.
        self._held: set[str] = set()
        # None: nobody re-drives, trust Redis. Otherwise the failure count the last completed
        # re-drive saw: after any later failure, Redis is not trusted until a re-drive catches up.
        self._caught_up_to: int | None = None
        # Failures that made Redis untrusted (see caught_up); reads are counted by the
        # `ledger_cache_requests_total` metric alone.
        self.errors = 0

    @staticmethod
    def _generation_key(scope: str) -> str:
        return f"{NAMESPACE}:{scope}:generation"

    @staticmethod
    def _value_prefix(scope: str, name: str) -> str:
        return f"{NAMESPACE}:{scope}:{name}:g"

    def _redis_usable(self, scope: str) -> bool:
        return (
            scope not in self._held
            and (self._caught_up_to is None or self._caught_up_to == self.errors)
            and self._breaker.available()
        )

    def plan_prefetch(self, entries: Iterable[Entry]) -> Prefetch | None:
        """The keys to read these entries ahead; None when Redis may not be read for any of them."""
        usable = tuple(entry for entry in entries if self._redis_usable(entry[0]))
        if not usable:
            return None
        return Prefetch(
            entries=usable,
            keys=tuple(self._generation_key(scope) for scope, _ in usable),
            prefixes=tuple(self._value_prefix(scope, name) for scope, name in usable),
        )

    async def get_or_load(self, scope: str, name: str, loader: Loader) -> dict[str, Any] | None:
        """The cached value of `name` in `scope`, loading (and storing) it on a miss."""
        prefetched = _prefetched.get()
        # Used once: a second read in the same request asks Redis again.
        fetched = prefetched.pop((scope, name), None) if prefetched else None
        # Checked now, not only when it was read ahead: a failure or a held scope since then wins.
        kind = scope.partition(":")[0]  # account, user, payments: never the id after it
        if not self._redis_usable(scope):
            _counted(kind, "error").inc()
            return await loader()
        prefix = self._value_prefix(scope, name)
        if fetched is not None:
            generation, raw = fetched
        else:
            try:
                generation, raw = await self._get(keys=[self._generation_key(scope)], args=[prefix])
            except (RedisError, OSError, TimeoutError) as error:
                self._failed("get", error)
                _counted(kind, "error").inc()
                return await loader()
        if raw is not None:
            _counted(kind, "hit").inc()
            value: dict[str, Any] = json.loads(raw)
            return value
        _counted(kind, "miss").inc()
        key = prefix + generation.decode()
        return await self._load_once(key, self._generation_key(scope), loader)

    async def _load_once(
        self, key: str, generation_key: str, loader: Loader
    ) -> dict[str, Any] | None:
        """Single flight: concurrent misses on one key share one database load."""
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await loader()
            future.set_result(value)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._in_flight[key]
        if value is not None:
            await self._store(key, generation_key, value)
        return value

    async def _store(self, key: str, generation_key: str, value: dict[str, Any]) -> None:
        try:
            await self._store_entry(
                keys=[key, generation_key],
                args=[json.dumps(value, separators=(",", ":")), self._ttl, self._generation_ttl],
            )
        except (RedisError, OSError, TimeoutError) as error:
            self._failed("set", error)

    async def bump(self, *scopes: str, force: bool = False) -> bool:
        """Move each scope to a new generation; False if Redis did not confirm it.

        With the breaker open this does not even try (the caller records the miss instead of
        waiting for a timeout); `force` tries anyway, as the background re-drive does.
        """
        if not scopes:
            return True
        prefetched = _prefetched.get()
        if prefetched:
            # This request changed them: what it read ahead is older than its own write.
            for entry in [entry for entry in prefetched if entry[0] in scopes]:
                del prefetched[entry]
        if not force and not self._breaker.available():
            return False
        try:
            await self._bump(
                keys=[self._generation_key(scope) for scope in scopes], args=[self._generation_ttl]
            )
        except (RedisError, OSError, TimeoutError) as error:
            self._failed("invalidate", error)
            return False
        return True

    def hold(self, *scopes: str) -> None:
        """Read these scopes from the database until `set_held` releases them."""
        self._held.update(scopes)

    def set_held(self, scopes: Collection[str]) -> None:
        """Hold exactly these scopes: every other invalidation has reached Redis."""
        self._held = set(scopes)

    @property
    def held(self) -> frozenset[str]:
        """The scopes read from the database because Redis missed their invalidation."""
        return frozenset(self._held)

    def watch_failures(self) -> None:
        """From now on, trust Redis only after `caught_up`, and again after every failure."""
        self._caught_up_to = -1

    def caught_up(self, failures: int) -> None:
        """A re-drive that began at `failures` failures applied everything recorded."""
        if self._caught_up_to is not None:
            self._caught_up_to = failures

    def _failed(self, operation: str, error: BaseException) -> None:
        if is_local_saturation(error):
            # Our own pool is busy, Redis is fine: fall back for this call only. A read or a
            # store missed nothing; a missed bump is recorded by the caller all the same.
            if operation == "invalidate":
                self.errors += 1
            logger.info("cache_pool_saturated", operation=operation)
            return
        self.errors += 1
        self._breaker.record_failure()
        logger.warning("cache_unavailable", operation=operation, error=type(error).__name__)


def mark_stale(session: AsyncSession, *scopes: str) -> None:
    """Record scopes whose cached values this transaction changes (bumped after its commit)."""
    session.info.setdefault(_STALE_SCOPES, set()).update(scopes)


def take_stale(session: AsyncSession | Session) -> set[str]:
    """The scopes recorded by `mark_stale`, forgetting them: the caller now invalidates them."""
    stale: set[str] = session.info.pop(_STALE_SCOPES, set())
    return stale


def record_invalidations(session: Session, scopes: Collection[str]) -> None:
    """Write scopes to `cache_invalidations` and notify every process, in this transaction."""
    ordered = sorted(scopes)
    if not ordered:
        return
    session.execute(insert(INVALIDATIONS), [{"scope": scope} for scope in ordered])
    for payload in notify_payloads(ordered):
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, payload)))


def notify_payloads(scopes: Collection[str]) -> Iterator[str]:
    """Space-separated scopes, cut into payloads that fit one NOTIFY ("" = read the table)."""
    batch: list[str] = []
    size = 0
    for scope in scopes:
        length = len(scope.encode()) + 1
        if length > _NOTIFY_PAYLOAD_BYTES:
            yield ""  # too long to name: listeners just re-read the table
            continue
        if batch and size + length > _NOTIFY_PAYLOAD_BYTES:
            yield " ".join(batch)
            batch, size = [], 0
        batch.append(scope)
        size += length
    if batch:
        yield " ".join(batch)


@event.listens_for(Session, "before_commit")
def _record_unclaimed_scopes(session: Session) -> None:
    # Any session's commit reaches this. The request's session dependency claims its scopes
    # before committing (and bumps them right after); a worker or the CLI that does not still
    # gets them invalidated: recorded atomically with the change, applied by the re-drive.
    # A SAVEPOINT's release is no commit: its scopes wait for the outer transaction's.
    if session.in_nested_transaction():
        return
    scopes = take_stale(session)
    if scopes:
        record_invalidations(session, scopes)
