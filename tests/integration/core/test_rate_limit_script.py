"""The rate-limit script on the real Redis: `limits`' counter, and cache entries read ahead.

Each test counts under an identity of its own, so nothing needs flushing.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from app.core.cache import Cache, serve_prefetched
from app.core.rate_limit import KEY_PREFIX, RateLimiter, Verdict, window_keys
from app.core.redis import RedisBreaker
from tests.conftest import TEST_REDIS_URL
from tests.metrics import cache_reads, cache_reads_since


@pytest.fixture
async def redis(migrated_database: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def theirs(redis: Redis) -> SlidingWindowCounterRateLimiter:
    """`limits`' own sliding-window counter on the same keys, as the limiter used before."""
    storage = RedisStorage(
        "async+redis://",
        implementation="redispy",
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed through
        key_prefix=KEY_PREFIX,
        wrap_exceptions=True,
    )
    return SlidingWindowCounterRateLimiter(storage)


def identity() -> str:
    return uuid.uuid4().hex


async def test_it_counts_in_the_windows_limits_counts_in(
    redis: Redis, theirs: SlidingWindowCounterRateLimiter
) -> None:
    """Processes still on `limits` (a rolling deploy) and ours spend one budget."""
    item, who, limiter = parse("3/minute"), identity(), RateLimiter(redis)
    assert await limiter.hit(item, "test", who, fail_open=True) == Verdict(True, 3)
    assert await theirs.hit(item, "test", who)
    assert (await theirs.get_window_stats(item, "test", who)).remaining == 1
    assert await limiter.hit(item, "test", who, fail_open=True) == Verdict(True, 3)
    refused = await limiter.hit(item, "test", who, fail_open=True)
    assert not await theirs.hit(item, "test", who)
    stats = await theirs.get_window_stats(item, "test", who)
    assert refused is not None
    assert (refused.allowed, refused.remaining) == (False, stats.remaining) == (False, 0)
    assert refused.reset_after is not None
    # As `limits` says, but for its modulo: 0 rather than 60 in the millisecond a window opens.
    assert abs(refused.reset_after - math.ceil(stats.reset_time - time.time())) % 60 <= 1
    assert 59 <= refused.reset_after <= 60  # the 3 hits of this window fade out together


async def test_the_previous_window_fades_and_retry_after_says_when(
    redis: Redis, theirs: SlidingWindowCounterRateLimiter
) -> None:
    item, who, limiter = parse("2/minute"), identity(), RateLimiter(redis)
    verdicts = [await limiter.hit(item, "t", who, fail_open=True) for _ in range(3)]
    assert [v.allowed if v else None for v in verdicts] == [True, True, False]
    _, current = window_keys(item, "t", who)
    # As if 80 s had passed: the window ended 20 s ago, and its 2 hits now weigh 2 * 40/60.
    await redis.pexpire(current, 40_000)
    assert await limiter.hit(item, "t", who, fail_open=True) == Verdict(True, 2)
    refused = await limiter.hit(item, "t", who, fail_open=True)
    # The soonest relief: one of the old window's hits fades out every 30 s, next in ~10 s.
    assert refused == Verdict(False, 2, remaining=0, reset_after=10)
    assert refused.headers == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "10",
        "Retry-After": "10",
    }
    stats = await theirs.get_window_stats(item, "t", who)
    assert stats.remaining == 0
    assert math.ceil(stats.reset_time - time.time()) == 10


async def test_an_allowed_request_gets_the_entries_and_a_refused_one_nothing(
    redis: Redis,
) -> None:
    cache, limiter, who = Cache(redis, ttl_seconds=60), RateLimiter(redis), identity()
    scope = f"test:prefetch:{who}"

    async def load() -> dict[str, object]:
        return {"v": 1}

    await cache.get_or_load(scope, "stored", load)
    await cache.bump(scope)
    await cache.get_or_load(scope, "stored", load)  # now stored under generation 1
    reads = cache.plan_prefetch([(scope, "stored"), (scope, "absent")])
    assert reads is not None
    item = parse("1/minute")
    verdict, fetched = await limiter.hit_and_read(item, "t", who, fail_open=True, reads=reads)
    assert verdict == Verdict(True, 1)
    assert fetched == {(scope, "stored"): (b"1", b'{"v":1}'), (scope, "absent"): (b"1", None)}
    verdict, fetched = await limiter.hit_and_read(item, "t", who, fail_open=True, reads=reads)
    assert verdict is not None
    assert not verdict.allowed
    assert fetched is None  # a refused request learns nothing from the cache


async def test_an_entry_read_ahead_is_at_the_current_generation(redis: Redis) -> None:
    """A commit's bump lands before its response: a later request's read ahead sees it."""
    cache, limiter, who = Cache(redis, ttl_seconds=60), RateLimiter(redis), identity()
    scope = f"test:fresh:{who}"
    version = "old"
    loads = 0

    async def load() -> dict[str, object]:
        nonlocal loads
        loads += 1
        return {"v": version}

    assert await cache.get_or_load(scope, "x", load) == {"v": "old"}  # cached at generation 0
    version = "new"
    await cache.bump(scope)  # the writer's commit
    _, fetched = await limiter.hit_and_read(
        parse("9/minute"), "t", who, fail_open=True, reads=cache.plan_prefetch([(scope, "x")])
    )
    assert fetched == {(scope, "x"): (b"1", None)}
    before = cache_reads()
    with serve_prefetched(fetched):
        assert await cache.get_or_load(scope, "x", load) == {"v": "new"}
        assert fetched == {}  # the read ahead was taken...
    assert loads == 2  # ...as a miss at the new generation: loaded anew
    assert cache_reads_since(before) == {("test", "miss"): 1}
    assert await cache.get_or_load(scope, "x", load) == {"v": "new"}  # stored under g1
    assert loads == 2


async def test_an_entry_read_ahead_is_used_once_and_never_after_its_scope_moves(
    redis: Redis,
) -> None:
    cache, limiter, who = Cache(redis, ttl_seconds=60), RateLimiter(redis), identity()
    scope, other = f"test:once:{who}", f"test:other:{who}"
    version = "old"

    async def load() -> dict[str, object]:
        return {"v": version}

    for s in (scope, other):
        await cache.get_or_load(s, "x", load)
    reads = cache.plan_prefetch([(scope, "x"), (other, "x")])
    _, fetched = await limiter.hit_and_read(
        parse("9/minute"), "t", who, fail_open=True, reads=reads
    )
    assert fetched is not None
    version = "new"
    with serve_prefetched(fetched):
        await cache.bump(scope)  # this request's own commit changed `scope`
        assert await cache.get_or_load(scope, "x", load) == {"v": "new"}
        assert (other, "x") in fetched
        assert await cache.get_or_load(other, "x", load) == {"v": "old"}  # read ahead
        assert fetched == {}  # taken: a second read asks Redis
        assert await cache.get_or_load(other, "x", load) == {"v": "old"}  # from Redis
    assert fetched == {}  # nothing outlives the request


async def test_a_held_scope_is_not_read_ahead_nor_served_from_what_was(redis: Redis) -> None:
    cache, limiter, who = Cache(redis, ttl_seconds=60), RateLimiter(redis), identity()
    held, later = f"test:held:{who}", f"test:later:{who}"
    version = "old"

    async def load() -> dict[str, object]:
        return {"v": version}

    for s in (held, later):
        await cache.get_or_load(s, "x", load)
    cache.hold(held)
    reads = cache.plan_prefetch([(held, "x"), (later, "x")])
    assert reads is not None
    assert reads.entries == ((later, "x"),)
    _, fetched = await limiter.hit_and_read(
        parse("9/minute"), "t", who, fail_open=True, reads=reads
    )
    cache.hold(later)  # a notification arrived after the read ahead
    version = "new"
    before = cache_reads()
    with serve_prefetched(fetched):
        assert await cache.get_or_load(later, "x", load) == {"v": "new"}
    assert cache_reads_since(before) == {("test", "error"): 1}  # not served from what was read
    cache.hold(held)
    assert cache.plan_prefetch([(held, "x")]) is None


async def test_redis_down_reads_nothing_ahead_and_fails_open_or_counts_locally(
    migrated_database: str,
) -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    breaker = RedisBreaker(open_seconds=30)
    cache, limiter = (
        Cache(client, ttl_seconds=60, breaker=breaker),
        RateLimiter(client, breaker=breaker),
    )
    item, who = parse("1/minute"), identity()
    try:
        reads = cache.plan_prefetch([("test:down", "x")])
        assert await limiter.hit_and_read(item, "t", who, fail_open=True, reads=reads) == (
            None,
            None,
        )
        assert not breaker.available()
        assert cache.plan_prefetch([("test:down", "x")]) is None  # breaker open: not even asked
        allowed, _ = await limiter.hit_and_read(item, "t", who, fail_open=False)
        refused, _ = await limiter.hit_and_read(item, "t", who, fail_open=False)
    finally:
        await client.aclose()
    assert allowed == Verdict(True, 1)  # the per-process fallback counts
    assert refused is not None
    assert (refused.allowed, refused.remaining) == (False, 0)
