"""Rate limits shared by every API process: the `limits` library's asyncio API on Redis.

- Every `/api/v1` request counts against `RATE_LIMIT_DEFAULT` per client IP, *before*
  authentication, so anonymous and failing requests are limited too (middleware below).
- Login and registration add stricter limits (route dependencies, see `app/auth/router.py`);
  login also limits per IP + account, so one address cannot guess one password for long.
- Answers: `429 rate_limited` in the error shape with `Retry-After`, `X-RateLimit-Limit`,
  `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds). Allowed responses carry
  `X-RateLimit-Limit` only: the rest would cost every request a second Redis round trip.
- Redis down: general routes fail open (logged); login and registration fall back to a
  per-process limit, so a Redis outage never opens the door to unlimited password guessing
  or unlimited Argon2 hashing.
- Exemptions: an identity can be exempted from one limit for a while (`RateLimiter.exempt`).
  Login uses this for its per-account budget across all clients (ADR 0014): a client that
  signed in to the account recently keeps signing in while strangers have spent the budget.
- The client IP is the peer address; `X-Forwarded-For` is believed only from TRUSTED_PROXIES
  (uvicorn's ProxyHeadersMiddleware, installed in `create_app`, rewrites the peer first).

ADR 0005 explains why `limits` directly rather than slowapi.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings, get_settings
from app.core.error_handlers import app_error_response, request_id_of
from app.core.errors import RateLimitedError
from app.core.logging import get_logger
from app.core.redis import RedisBreaker, is_local_saturation

logger = get_logger(__name__)
KEY_PREFIX = "ledger:v1:ratelimit"
# Exemptions this process remembers for a Redis outage; beyond it, the oldest are forgotten.
LOCAL_EXEMPTIONS_MAX = 10_000


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request against one limit.

    `remaining` and `reset_after` are known only for a refusal: reading the window's state
    costs a second Redis round trip, which an allowed request does not pay.
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


class RateLimiter:
    """Counts hits per (limit name, identity) in Redis, with a per-process fallback."""

    def __init__(self, redis: Redis, *, breaker: RedisBreaker | None = None) -> None:
        self._breaker = breaker or RedisBreaker(open_seconds=0)
        shared = RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed through
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
        )
        self._shared = SlidingWindowCounterRateLimiter(shared)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis = redis
        self._local_exemptions: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry
        self.saturated = 0  # calls that fell back because our own pool was busy

    async def hit(
        self, item: RateLimitItem, name: str, identity: str, *, fail_open: bool
    ) -> Verdict | None:
        """Count one request. None means "not counted": Redis failed and `fail_open` is set."""
        if self._breaker.available():
            try:
                return await self._count(self._shared, item, name, identity)
            except (StorageError, RedisError, OSError, TimeoutError) as error:
                self._storage_failed(name, error)
        if fail_open:
            return None
        return await self._count(self._local, item, name, identity)

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
            self.saturated += 1
            logger.info("rate_limit_pool_saturated", limit=name)
            return
        self._breaker.record_failure()
        logger.warning("rate_limit_storage_unavailable", limit=name, error=type(error).__name__)

    @staticmethod
    async def _count(
        strategy: SlidingWindowCounterRateLimiter, item: RateLimitItem, name: str, identity: str
    ) -> Verdict:
        if await strategy.hit(item, name, identity):
            return Verdict(allowed=True, limit=item.amount)
        stats = await strategy.get_window_stats(item, name, identity)
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
    """Count every `/api/v1` request against the default per-IP limit, before any auth."""

    def __init__(self, app: ASGIApp, *, settings: Settings, prefix: str = "/api/v1") -> None:
        self.app = app
        self.prefix = prefix
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.item = parse(settings.RATE_LIMIT_DEFAULT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse with 429, or pass through and add the X-RateLimit-* headers."""
        if not self.enabled or scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.rate_limiter
        verdict = await limiter.hit(self.item, "default", client_ip(scope), fail_open=True)
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if not verdict.allowed:
            logger.info("rate_limited", limit="default", client=client_ip(scope))
            response = app_error_response(
                RateLimitedError(headers=verdict.headers), request_id=request_id_of(Request(scope))
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in verdict.headers.items():
                    headers.setdefault(name, value)
            await send(message)

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
    if not get_settings().RATE_LIMIT_ENABLED:
        return
    verdict = await get_rate_limiter(request).hit(parse(limit), name, identity, fail_open=fail_open)
    if verdict is not None and not verdict.allowed:
        logger.info("rate_limited", limit=name, client=client_ip(request.scope))
        raise RateLimitedError(detail, headers=verdict.headers)
