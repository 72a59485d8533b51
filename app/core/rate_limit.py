"""Rate limits shared by every API process: a sliding-window counter in Redis, our own script.

- Every `/api/v1` request counts against `RATE_LIMIT_DEFAULT` per client IP, *before*
  authentication, so anonymous and failing requests are limited too (middleware below).
- Login and registration add stricter limits (route dependencies, see `app/auth/router.py`);
  login also limits per IP + account, so one address cannot guess one password for long.
- Counting is one Lua script (`_HIT_SCRIPT`): the sliding-window counter of the `limits`
  library, with its keys and arithmetic, so processes still counting through `limits` share
  the budget. The same round trip answers what a refusal needs and, for an allowed request
  only, reads cache entries ahead: the middleware is given (`prefetch`) which entries the
  request will read, and the caller's principal (and, for an account read, the account) comes
  back with the verdict (ADR 0022).
- Answers: `429 rate_limited` in the error shape with `Retry-After`, `X-RateLimit-Limit`,
  `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds). Allowed responses carry
  `X-RateLimit-Limit` only.
- Redis down: general routes fail open (logged); login and registration fall back to a
  per-process limit (`limits`' memory storage), so a Redis outage never opens the door to
  unlimited password guessing or unlimited Argon2 hashing. A busy local pool is no outage.
- Exemptions: an identity can be exempted from one limit for a while (`RateLimiter.exempt`).
  Login uses this for its per-account budget across all clients (ADR 0014): a client that
  signed in to the account recently keeps signing in while strangers have spent the budget.
- The client IP is the peer address; `X-Forwarded-For` is believed only from TRUSTED_PROXIES
  (uvicorn's ProxyHeadersMiddleware, installed in `create_app`, rewrites the peer first).

ADR 0005 explains why not slowapi; ADR 0022 why our own script rather than `limits`' storage.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.cache import READ_ENTRIES_LUA, Cache, Entry, Prefetch, Prefetched, serve_prefetched
from app.core.config import Settings
from app.core.error_handlers import app_error_response, request_id_of
from app.core.errors import RateLimitedError
from app.core.http_headers import add_missing_headers
from app.core.logging import get_logger
from app.core.metrics import RATE_LIMITED
from app.core.redis import RedisBreaker, is_local_saturation

logger = get_logger(__name__)
KEY_PREFIX = "ledger:v1:ratelimit"
# Exemptions this process remembers for a Redis outage; beyond it, the oldest are forgotten.
LOCAL_EXEMPTIONS_MAX = 10_000

# `limits`' sliding-window counter (its acquire script, same keys and arithmetic), answering
# with what a refusal needs and, for an allowed request only, with cache entries read ahead.
# KEYS[1], KEYS[2]: the previous and the current window; ARGV[1]: the limit; ARGV[2]: the
# window in seconds; KEYS[3..] and ARGV[3..]: a `Prefetch`. Times are in milliseconds.
# Refused: {0, previous count, previous ttl, current count, current ttl}. Allowed: {1, entries}.
_HIT_SCRIPT = (
    READ_ENTRIES_LUA
    + """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local current_ttl = tonumber(redis.call('PTTL', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    -- The current window is over: it becomes the previous one, which fades as it expires.
    redis.call('RENAME', KEYS[2], KEYS[1])
    redis.call('SET', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('GET', KEYS[1])) or 0
local previous_ttl = math.max(tonumber(redis.call('PTTL', KEYS[1])), 0)
local current_count = tonumber(redis.call('GET', KEYS[2])) or 0
current_ttl = math.max(tonumber(redis.call('PTTL', KEYS[2])), 0)
if math.floor(previous_count * previous_ttl / expiry) + current_count + 1 > limit then
    return {0, previous_count, previous_ttl, current_count, current_ttl}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCR', KEYS[2])
else
    redis.call('SET', KEYS[2], 1, 'PX', expiry * 2)
end
return read_entries(3, 3, {1})
"""
)

# Which cache entries a request will read, from its scope alone (before any auth has run).
Prefetcher = Callable[[Scope], Sequence[Entry]]


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request against one limit.

    `remaining` and `reset_after` are given for a refusal only: an allowed response carries
    `X-RateLimit-Limit` alone.
    """

    allowed: bool
    limit: int
    remaining: int | None = None
    reset_after: int | None = None  # seconds until the window frees up

    @property
    def headers(self) -> dict[str, str]:
        """`X-RateLimit-Limit` always; on a refusal also Remaining, Reset and `Retry-After`."""
        headers = {"X-RateLimit-Limit": str(self.limit)}
        if self.remaining is not None and self.reset_after is not None:
            headers["X-RateLimit-Remaining"] = str(self.remaining)
            headers["X-RateLimit-Reset"] = str(self.reset_after)
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


def window_keys(item: RateLimitItem, name: str, identity: str) -> tuple[str, str]:
    """The previous and the current window's keys: the ones `limits`' Redis storage uses."""
    current = f"{KEY_PREFIX}:{{{item.key_for(name, identity)}}}"
    return f"{current}/-1", current


def refusal(item: RateLimitItem, window: Sequence[int]) -> Verdict:
    """The 429's figures from the window's (previous count, ttl ms, current count, ttl ms).

    Computed as `limits`' `get_window_stats` does: the reset is the soonest moment a weighted
    hit fades out of either window. One difference: the current window ends `ttl - expiry` from
    now, which `limits` writes `ttl % expiry`: 0 instead of a whole window when the refusal
    comes in the very millisecond the window opened (its key's ttl is then exactly 2 * expiry).
    """
    previous_count, previous_ttl_ms, current_count, current_ttl_ms = window
    expiry = item.get_expiry()
    previous_ttl, current_ttl = previous_ttl_ms / 1000, current_ttl_ms / 1000
    weighted = previous_count * previous_ttl / expiry + current_count
    resets = []
    if previous_count:
        resets.append(previous_ttl % (expiry / previous_count))
    if current_count:
        resets.append(current_ttl - expiry if current_ttl > expiry else current_ttl % expiry)
    return Verdict(
        allowed=False,
        limit=item.amount,
        remaining=max(item.amount - math.floor(weighted), 0),
        reset_after=max(math.ceil(min(resets)), 0) if resets else 0,
    )


class RateLimiter:
    """Counts hits per (limit name, identity) in Redis, with a per-process fallback."""

    def __init__(self, redis: Redis, *, breaker: RedisBreaker | None = None) -> None:
        self._breaker = breaker or RedisBreaker(open_seconds=0)
        self._hit = redis.register_script(_HIT_SCRIPT)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis = redis
        self._local_exemptions: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry

    async def hit(
        self, item: RateLimitItem, name: str, identity: str, *, fail_open: bool
    ) -> Verdict | None:
        """Count one request. None means "not counted": Redis failed and `fail_open` is set."""
        verdict, _ = await self.hit_and_read(item, name, identity, fail_open=fail_open)
        return verdict

    async def hit_and_read(
        self,
        item: RateLimitItem,
        name: str,
        identity: str,
        *,
        fail_open: bool,
        reads: Prefetch | None = None,
    ) -> tuple[Verdict | None, Prefetched | None]:
        """Count one request as `hit` does and, if it is allowed, read `reads` in the same trip.

        The entries come back only for a request allowed by Redis: a refusal, a failure or the
        per-process fallback reads nothing, and their readers ask Redis themselves as before.
        """
        if self._breaker.available():
            keys = [*window_keys(item, name, identity)]
            args: list[Any] = [item.amount, item.get_expiry()]
            if reads is not None:
                keys += reads.keys
                args += reads.prefixes
            try:
                reply = await self._hit(keys=keys, args=args)
            except (RedisError, OSError, TimeoutError) as error:
                self._storage_failed(name, error)
            else:
                if not reply[0]:
                    return refusal(item, reply[1:]), None
                verdict = Verdict(allowed=True, limit=item.amount)
                return verdict, reads.results(reply[1:]) if reads is not None else None
        if fail_open:
            return None, None
        return await self._count_locally(item, name, identity), None

    async def exempt(self, name: str, identity: str, *, seconds: int) -> None:
        """Exempt `identity` from the limit `name` for `seconds` (in Redis and in this process)."""
        key = f"{KEY_PREFIX}:exempt:{name}:{identity}"
        self._local_exemptions.pop(key, None)
        self._local_exemptions[key] = time.monotonic() + seconds
        while len(self._local_exemptions) > LOCAL_EXEMPTIONS_MAX:
            self._local_exemptions.popitem(last=False)
        if self._breaker.available():
            try:
                await self._redis.set(key, b"1", ex=seconds)
            except (RedisError, OSError, TimeoutError) as error:
                self._storage_failed(name, error)

    async def is_exempt(self, name: str, identity: str) -> bool:
        """Whether `identity` is exempt from `name`.

        While Redis is unavailable only this process's memory answers: exemptions made by
        other processes, or before a restart, are not seen, and the limit applies.
        """
        key = f"{KEY_PREFIX}:exempt:{name}:{identity}"
        if self._breaker.available():
            try:
                return bool(await self._redis.exists(key))
            except (RedisError, OSError, TimeoutError) as error:
                self._storage_failed(name, error)
        expires = self._local_exemptions.get(key)
        if expires is not None and expires <= time.monotonic():
            del self._local_exemptions[key]
            return False
        return expires is not None

    def _storage_failed(self, name: str, error: BaseException) -> None:
        if is_local_saturation(error):
            # Our pool is busy, Redis is fine: this call falls back, the breaker stays shut.
            logger.info("rate_limit_pool_saturated", limit=name)
            return
        self._breaker.record_failure()
        logger.warning("rate_limit_storage_unavailable", limit=name, error=type(error).__name__)

    async def _count_locally(self, item: RateLimitItem, name: str, identity: str) -> Verdict:
        if await self._local.hit(item, name, identity):
            return Verdict(allowed=True, limit=item.amount)
        stats = await self._local.get_window_stats(item, name, identity)
        return Verdict(
            allowed=False,
            limit=item.amount,
            remaining=max(stats.remaining, 0),
            reset_after=max(math.ceil(stats.reset_time - time.time()), 0),
        )


def client_ip(scope: Scope) -> str:
    """The client's address as the app sees it (after trusted-proxy rewriting)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Count every `/api/v1` request against the default per-IP limit, before any auth.

    The `prefetch` functions name the cache entries the request will read (the wiring in
    `create_app` gives auth's, the bearer token's principal; accounts', the account a read
    names; payments', the caller's first page of payments); an allowed request gets them in
    the same round trip, and `Cache.get_or_load` serves them from there (ADR 0022).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        prefix: str = "/api/v1",
        prefetch: Sequence[Prefetcher] = (),
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.item = parse(settings.RATE_LIMIT_DEFAULT)
        self.prefetch = tuple(prefetch)
        # An allowed answer carries X-RateLimit-Limit only (`Verdict.headers`): encoded once.
        self._allowed_headers = ((b"x-ratelimit-limit", str(self.item.amount).encode()),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse with 429, or pass through and add the X-RateLimit-* headers."""
        if not self.enabled or scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limiter: RateLimiter = state.rate_limiter
        reads = None
        if entries := [entry for prefetcher in self.prefetch for entry in prefetcher(scope)]:
            cache: Cache = state.cache
            reads = cache.plan_prefetch(entries)
        verdict, prefetched = await limiter.hit_and_read(
            self.item, "default", client_ip(scope), fail_open=True, reads=reads
        )
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if not verdict.allowed:
            logger.info("rate_limited", limit="default", client=client_ip(scope))
            RATE_LIMITED.labels(limit="default").inc()
            response = app_error_response(
                RateLimitedError(headers=verdict.headers), request_id=request_id_of(Request(scope))
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_missing_headers(message, self._allowed_headers)
            await send(message)

        with serve_prefetched(prefetched):
            await self.app(scope, receive, send_with_headers)


def get_rate_limiter(request: Request) -> RateLimiter:
    """The limiter the lifespan created."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def enforce(
    request: Request,
    *,
    limit: str,
    name: str,
    identity: str,
    fail_open: bool = False,
    detail: str | None = None,
) -> None:
    """Count a stricter, route-specific limit; raise RateLimitedError when it is exceeded."""
    if not request.app.state.settings.RATE_LIMIT_ENABLED:
        return
    verdict = await get_rate_limiter(request).hit(parse(limit), name, identity, fail_open=fail_open)
    if verdict is not None and not verdict.allowed:
        logger.info("rate_limited", limit=name, client=client_ip(request.scope))
        RATE_LIMITED.labels(limit=name).inc()
        raise RateLimitedError(detail, headers=verdict.headers)
