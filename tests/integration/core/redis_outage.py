"""Redis outages on demand: a private redis-server, and a TCP proxy in front of it that stalls.

The shared Redis is never paused: other test runs use it. A stalled proxy drops the bytes
that cross it both ways, as a hung server or a broken network path does: a client's command
times out and, unlike with a paused server, never runs later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis as SyncRedis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[int]:
    """A redis-server of our own (no persistence) on a free port; stopped by its pid after."""
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is needed for the outage tests"
    port = free_port()
    pidfile = directory / "redis.pid"
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    options |= {"daemonize": "yes", "pidfile": str(pidfile), "dir": str(directory)}
    arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
    subprocess.run([server, *arguments], check=True)  # noqa: S603 - built by the tests
    client = SyncRedis(port=port)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError, ConnectionError, Exception):
                if client.ping() and pidfile.exists():
                    break
            time.sleep(0.01)
        yield port
    finally:
        client.close()
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


class StallableProxy:
    """Forwards TCP to a Redis port; `stall()` drops everything until `resume()`."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stalled = False
        self.port = 0

    @property
    def url(self) -> str:
        """A Redis URL through this proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """From now on, drop every byte in both directions."""
        self.stalled = True

    def resume(self) -> None:
        """Forward again (what was dropped stays lost)."""
        self.stalled = False

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connected(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            self._writers.add(upstream_w)
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        except OSError:
            pass
        finally:
            for writer in (client_w, upstream_w):
                if writer is not None:
                    writer.close()
                    self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.stalled:
                    writer.write(data)
                    await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()  # one side ended: end the other, as a TCP peer would see it
