"""Raw sockets against `python -m app.server`: oversized and slow requests are cut off.

The attacks of issue 8's black-box test, replayed: huge and countless headers, slow-loris
heads and bodies. The server runs with the default size bounds and 1-second read timeouts.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Server, free_port, start_server

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SLACK = 3.0  # a generous margin on the timeouts: a shared machine may be slow
MAX_HEADER_BYTES = 16 * 1024  # the defaults of Settings
MAX_HEADER_COUNT = 100
HOLD_AT_MOST = 15.0  # no test waits longer than this for the server to act


@dataclass
class Port:
    """Where the bounded server listens, and its process id."""

    number: int
    pid: int


@pytest.fixture(scope="module")
def served(migrated_database: str) -> Iterator[Port]:
    """One `python -m app.server` with short read timeouts for this module."""
    port = free_port()
    server: Server = start_server(
        [sys.executable, "-m", "app.server"],
        port,
        env={
            "PORT": str(port),
            "HEADER_READ_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        },
    )
    yield Port(port, server.process.pid)
    _, log = server.stop()
    assert "Traceback" not in log


@dataclass
class Answer:
    """What the server sent back on one connection, and whether it closed it."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int | None:
        """The status code of the first response, if there was one."""
        return int(self.data.split(b" ", 2)[1]) if self.data else None

    def problem(self) -> dict[str, Any]:
        """The JSON body of the (only) response."""
        body: dict[str, Any] = json.loads(self.data.split(b"\r\n\r\n", 1)[1])
        return body


def exchange(port: Port, chunks: Iterable[bytes]) -> Answer:
    """Send `chunks` on a new connection while reading whatever comes back, until closed."""
    sock = socket.create_connection(("127.0.0.1", port.number))
    sock.settimeout(HOLD_AT_MOST)
    received = bytearray()
    closed = threading.Event()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                received.extend(chunk)
            closed.set()
        except ConnectionResetError:  # closed while our bytes were still unread there
            closed.set()
        except TimeoutError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for chunk in chunks:
            sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped listening to us: what it said is in `received`
    reader.join()
    sock.close()
    return Answer(bytes(received), closed.is_set())


def request_head(*header_lines: bytes) -> bytes:
    """A GET /health/live head with these extra header lines (each without its CRLF)."""
    lines = [b"GET /health/live HTTP/1.1", b"Host: test", b"Connection: close", *header_lines]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def huge_headers(count: int, megabytes: int) -> Iterator[bytes]:
    """A head with `count` headers of `megabytes` MB each, generated 64 KiB at a time."""
    yield b"GET /health/live HTTP/1.1\r\nHost: test\r\n"
    for index in range(count):
        yield b"X-Big-%d: " % index
        for _ in range(megabytes * 16):
            yield b"a" * 65536
        yield b"\r\n"
    yield b"\r\n"


def rss_kib(pid: int) -> int:
    """The resident set size of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def test_heads_within_the_bounds_are_served_and_larger_ones_get_431(served: Port) -> None:
    normal = exchange(served, [request_head(*(b"X-H%d: %s" % (i, b"v" * 90) for i in range(50)))])
    one_big = exchange(served, [request_head(b"X-Big: " + b"a" * 8 * 1024 * 1024)])
    just_over = exchange(served, [request_head(b"X-Big: " + b"a" * MAX_HEADER_BYTES)])
    many = exchange(served, [request_head(*(b"X-H%d: v" % i for i in range(20_000)))])
    # Host, Connection and these: exactly MAX_HEADER_COUNT headers, then one more.
    at_count = exchange(served, [request_head(*(b"X-H%d: v" % i for i in range(98)))])
    one_too_many = exchange(served, [request_head(*(b"X-H%d: v" % i for i in range(99)))])

    assert normal.status == 200
    assert at_count.status == 200
    for refused in (one_big, just_over, many, one_too_many):
        assert refused.status == 431
        assert refused.closed
        assert refused.problem()["error"] == "request_header_fields_too_large"
        assert b"content-type: application/problem+json\r\n" in refused.data


def test_two_64_mb_headers_are_refused_without_the_process_growing(served: Port) -> None:
    exchange(served, huge_headers(count=1, megabytes=1))  # warm the refusal path up
    before = rss_kib(served.pid)
    answer = exchange(served, huge_headers(count=2, megabytes=64))
    after = rss_kib(served.pid)

    assert answer.status == 431
    assert answer.closed
    assert after - before < 5 * 1024, f"RSS grew from {before} KiB to {after} KiB"


def dribble(
    port: Port, opening: bytes, drip: bytes, connections: int
) -> list[tuple[Answer, float]]:
    """Open `connections`, send `opening` on each, then `drip` every 0.2 s until closed.

    Returns each connection's answer and how long after its opening the server closed it.
    """
    socks = [socket.create_connection(("127.0.0.1", port.number)) for _ in range(connections)]
    started = time.monotonic()
    received = {sock: bytearray() for sock in socks}
    closed_after: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.sendall(opening)
            selector.register(sock, selectors.EVENT_READ)
        next_drip = started
        while len(closed_after) < connections and time.monotonic() - started < HOLD_AT_MOST:
            if drip and time.monotonic() >= next_drip:
                for sock in set(socks) - closed_after.keys():
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        sock.sendall(drip)
                next_drip += 0.2
            for key, _ in selector.select(timeout=0.05):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    chunk = ready.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[ready].extend(chunk)
                else:
                    closed_after[ready] = time.monotonic() - started
                    selector.unregister(ready)
    for sock in socks:
        sock.close()
    return [
        (Answer(bytes(received[sock]), sock in closed_after), closed_after.get(sock, HOLD_AT_MOST))
        for sock in socks
    ]


def test_slow_loris_heads_get_408_and_are_disconnected_within_the_bound(served: Port) -> None:
    dribbled = dribble(served, b"GET /health/live HTTP/1.1\r\nHost: test\r\n", b"X-a: b\r\n", 6)
    silent = dribble(served, b"", b"", 1)  # connects and never says a word

    for answer, seconds in dribbled + silent:
        assert answer.status == 408
        assert answer.closed
        assert seconds < HEADER_TIMEOUT + SLACK
        assert answer.problem()["error"] == "request_timeout"


def test_a_slow_body_gets_408_and_is_disconnected_within_the_bound(served: Port) -> None:
    opening = (
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    ((answer, seconds),) = dribble(served, opening, b" ", 1)

    assert answer.status == 408
    assert answer.closed
    assert seconds < BODY_TIMEOUT + SLACK
