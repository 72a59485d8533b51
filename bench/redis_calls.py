"""CPU per Redis script call, many callers at once: redis-py's pool against one multiplexed socket.

    .venv/bin/python bench/redis_calls.py [--calls 20000] [--callers 16] [--rounds 3]

Every API request calls the rate limit's registered script once (ADR 0022). With many
requests in flight, redis-py gives each call a pooled connection of its own: a pool checkout, a
send, a wake-up for its reply, a release. The other way, measured here only, is to multiplex:
one socket, every call made during one event-loop turn sent in one write, the replies parsed in
order by hiredis (what ioredis calls auto-pipelining; no Python client we know does it per
turn). The prototype below has no reconnection, no timeouts and no error replies: it measures
what the app would save, it is not for the app (`docs/performance.md`, "Later that morning
(2026-12-07)").

Both run the same script against the same keys, in alternating rounds, on Redis database 14
(127.0.0.1:6379, as `make bench`). The report (stderr) is CPU µs and wall µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import cast

import hiredis
import uvloop
from harness import REDIS_URL, progress_logger
from redis.asyncio import BlockingConnectionPool, Redis

log = progress_logger("redis-calls")
# A count and two reads, like the rate limit's script with the principal read ahead.
SCRIPT = """
redis.call('INCR', KEYS[1])
return {1, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"""
KEYS = ("bench:redis-calls:count", "bench:redis-calls:a", "bench:redis-calls:b")


def pack(*args: str | bytes | int) -> bytes:
    """One command in the Redis protocol (RESP)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Multiplexed(asyncio.Protocol):
    """One connection; the calls of one event-loop turn go out in one write."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[object]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write to."""
        # uvloop's transports do not subclass asyncio's: no isinstance check.
        self.transport = cast("asyncio.WriteTransport", transport)

    def data_received(self, data: bytes) -> None:
        """Hand each complete reply to the oldest waiting call."""
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def call(self, command: bytes) -> asyncio.Future[object]:
        """Queue one packed command; the first of a turn schedules the write."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[object] = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(command)
        self.waiting.append(waiter)
        return waiter

    def _flush(self) -> None:
        if self.transport is None:
            raise ConnectionError("not connected")
        self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()


async def measure(
    call: Callable[[], Awaitable[object]], calls: int, callers: int
) -> tuple[float, float]:
    """CPU and wall µs per call, with `callers` tasks calling at once."""

    async def caller() -> None:
        for _ in range(calls // callers):
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    done = calls // callers * callers
    return (time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6


async def main(args: argparse.Namespace) -> None:
    """Alternate the two ways for `--rounds` rounds and report each round."""
    # One connection per caller at most: the pool never runs dry, nobody waits for one.
    pool = BlockingConnectionPool.from_url(REDIS_URL, max_connections=args.callers, timeout=5)
    client = Redis.from_pool(pool)
    script = client.register_script(SCRIPT)
    await script(keys=list(KEYS), args=[])  # loaded: its sha is known from here on
    command = pack("EVALSHA", str(script.sha), len(KEYS), *KEYS)
    host, port = pool.connection_kwargs["host"], pool.connection_kwargs["port"]
    db = int(pool.connection_kwargs.get("db", 0))
    _, multiplexed = await asyncio.get_running_loop().create_connection(Multiplexed, host, port)
    await multiplexed.call(pack("SELECT", db))
    ways: dict[str, Callable[[], Awaitable[object]]] = {
        "redis-py, pooled": lambda: script(keys=list(KEYS), args=[]),
        "multiplexed": lambda: multiplexed.call(command),
    }
    try:
        for round_number in range(1, args.rounds + 1):
            for name, call in ways.items():
                cpu, wall = await measure(call, args.calls, args.callers)
                log(
                    f"round {round_number} {name:17s} {args.callers} callers: "
                    f"CPU {cpu:6.1f} µs/call, wall {wall:6.1f} µs/call"
                )
    finally:
        if multiplexed.transport is not None:
            multiplexed.transport.close()
        await client.delete(*KEYS)
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(parser.parse_args()))
