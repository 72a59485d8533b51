"""The request-head bounds and read timeouts of the HTTP protocol, driven without a socket.

A fake transport stands in for the connection, so each test feeds exact bytes and sees
exactly what the protocol writes; tests/e2e/test_request_bounds.py does the same through a
real socket against a real server process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.core import http_protocol
from app.core.config import get_settings
from app.core.http_protocol import BoundedHttpToolsProtocol, RequestBounds

TIMEOUT = 0.05  # the timer tests' read timeouts; waits below are generous multiples of it
BOUNDS = RequestBounds(
    max_header_bytes=1024, max_header_count=10, header_timeout=TIMEOUT, body_timeout=TIMEOUT
)
SLOW = RequestBounds(max_header_bytes=1024, max_header_count=10, header_timeout=60, body_timeout=60)


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; closing reports the loss as asyncio would."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.closed_event = asyncio.Event()
        self.reading = True
        self.protocol: asyncio.Protocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        if not self.closed and self.protocol is not None:
            self.closed = True
            self.closed_event.set()
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class App:
    """An ASGI app that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.requests: list[int] = []
        self.disconnects = 0
        self.may_read = asyncio.Event()
        self.may_read.set()
        self._served = asyncio.Event()

    async def served(self, count: int) -> None:
        """Return once `count` requests have been answered."""
        while len(self.requests) < count:
            self._served.clear()
            await self._served.wait()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        assert scope["type"] == "http"
        await self.may_read.wait()
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            assert message["type"] == "http.request"
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        self.requests.append(size)
        self._served.set()
        body = str(size).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


Connect = Callable[..., Awaitable[tuple[BoundedHttpToolsProtocol, FakeTransport, App]]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open connections to a fresh app through a protocol enforcing the given bounds."""
    opened: list[FakeTransport] = []

    async def open_connection(
        bounds: RequestBounds | None = BOUNDS,
    ) -> tuple[BoundedHttpToolsProtocol, FakeTransport, App]:
        app = App()
        config = Config(app=app, lifespan="off", proxy_headers=False, log_config=None)
        config.timeout_keep_alive = 60  # idle time between requests is not what is tested
        protocol_class = (
            BoundedHttpToolsProtocol
            if bounds is None
            else BoundedHttpToolsProtocol.with_bounds(bounds)
        )
        protocol = protocol_class(
            config=config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        transport = FakeTransport()
        transport.protocol = protocol
        protocol.connection_made(transport)
        opened.append(transport)
        return protocol, transport, app

    yield open_connection
    for transport in opened:
        transport.close()  # cancels the timers of connections a test left open
    await settle()


def head(
    size: int | None = None, *, headers: int = 1, method: str = "GET", extra: str = ""
) -> bytes:
    """A request head of `headers` headers, padded to exactly `size` bytes if given."""
    lines = [f"{method} / HTTP/1.1", "Host: test", *extra.splitlines()]
    lines += [f"X-{i}: v" for i in range(headers - 1 - len(extra.splitlines()))]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if size is None:
        return raw
    padding = size - len(raw) - len("X-Pad: \r\n")
    assert padding >= 0
    return raw[:-2] + b"X-Pad: " + b"a" * padding + b"\r\n\r\n"


async def settle() -> None:
    """Let the app's task and any scheduled callbacks run."""
    for _ in range(10):
        await asyncio.sleep(0)


async def until_closed(transport: FakeTransport, within: float = 2.0) -> None:
    """Wait for the protocol to close the connection, at most `within` seconds."""
    await asyncio.wait_for(transport.closed_event.wait(), within)


def status_of(written: bytes | bytearray) -> int | None:
    """The status code of the first response written, if any."""
    if not written:
        return None
    return int(bytes(written).split(b" ", 2)[1])


def problem_of(written: bytes | bytearray) -> dict[str, Any]:
    """The JSON body of the (only) response written."""
    body: dict[str, Any] = json.loads(bytes(written).split(b"\r\n\r\n", 1)[1])
    return body


def feed_in(protocol: BoundedHttpToolsProtocol, data: bytes, chunk: int) -> None:
    """Deliver `data` in reads of `chunk` bytes, as a slow network would."""
    for start in range(0, len(data), chunk):
        protocol.data_received(data[start : start + chunk])


class RecordingParser:
    """Wraps the real parser and records how many bytes it was fed."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed = 0

    def feed_data(self, data: memoryview) -> None:
        self.fed += len(data)
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


async def test_a_head_of_exactly_the_byte_bound_is_served_one_byte_more_is_431(
    connect: Connect,
) -> None:
    for chunk in (1, 100, 4096):
        protocol, transport, app = await connect()
        feed_in(protocol, head(1024), chunk)
        await settle()
        assert status_of(transport.written) == 200
        assert app.requests == [0]

        protocol, transport, app = await connect()
        feed_in(protocol, head(1025), chunk)
        await until_closed(transport)
        assert status_of(transport.written) == 431
        assert app.requests == []


async def test_a_huge_header_is_refused_before_the_parser_holds_more_than_the_bound(
    connect: Connect,
) -> None:
    protocol, transport, _ = await connect()
    parser = RecordingParser(protocol.parser)
    protocol.parser = parser  # type: ignore[assignment]
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: ")
    for _ in range(64):  # 16 MB in 256 KiB reads, as the event loop delivers them
        protocol.data_received(b"a" * 256 * 1024)
    await until_closed(transport)
    assert status_of(transport.written) == 431
    assert parser.fed == BOUNDS.max_header_bytes
    problem = problem_of(transport.written)
    assert problem["error"] == "request_header_fields_too_large"
    assert problem["status"] == 431
    assert b"content-type: application/problem+json\r\n" in transport.written
    assert b"connection: close\r\n" in transport.written


async def test_headers_up_to_the_count_bound_are_served_one_more_is_431(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    protocol.data_received(head(headers=10))
    await settle()
    assert status_of(transport.written) == 200

    protocol, transport, app = await connect()
    protocol.data_received(head(headers=11))
    await until_closed(transport)
    assert status_of(transport.written) == 431
    assert app.requests == []


async def test_oversized_trailers_close_the_connection_and_the_app_sees_a_disconnect(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    protocol.data_received(head(method="POST", extra="Transfer-Encoding: chunked"))
    protocol.data_received(b"3\r\nabc\r\n0\r\nX-Trailer: ")
    for _ in range(10):
        protocol.data_received(b"a" * 512)
    await until_closed(transport)
    await settle()
    assert status_of(transport.written) == 431
    assert app.disconnects == 1


async def test_pipelined_requests_are_served_and_an_oversized_one_after_them_ends_the_line(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    body = b"0123456789"
    post = head(method="POST", extra=f"Content-Length: {len(body)}") + body
    protocol.data_received(post + head(1024) + post + head(3000))
    await asyncio.wait_for(app.served(3), 2)
    await until_closed(transport)
    assert app.requests == [10, 0, 10]
    assert bytes(transport.written).count(b"HTTP/1.1 200 OK") == 3
    assert b"431" not in transport.written  # it would have come before the three answers


async def test_a_head_that_does_not_arrive_in_time_gets_408(connect: Connect) -> None:
    _, silent, _ = await connect()  # connects and sends nothing
    protocol, slow, app = await connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: test\r\n")
    await until_closed(silent)
    await until_closed(slow)
    assert status_of(silent.written) == 408
    assert status_of(slow.written) == 408
    assert problem_of(slow.written)["error"] == "request_timeout"
    assert app.requests == []


async def test_idle_time_between_requests_is_keep_alive_the_next_head_is_timed_anew(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    protocol.data_received(head())
    await asyncio.sleep(TIMEOUT * 4)  # idle between requests, well past the head timeout
    assert not transport.closed
    second = head(method="POST", extra="Content-Length: 4")
    protocol.data_received(second[:10])  # the second request's clock starts here
    protocol.data_received(second[10:] + b"body")
    await settle()
    assert app.requests == [0, 4]
    protocol.data_received(b"GET / HTTP/1.1\r\n")  # a third one that never completes
    await until_closed(transport)
    assert bytes(transport.written).count(b"HTTP/1.1 408 ") == 1


async def test_a_client_waiting_for_a_slow_answer_is_not_timed_out_meanwhile(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    app.may_read.clear()  # a slow endpoint
    protocol.data_received(head() + b"GET / HTTP/1.1\r\n")  # and the start of the next one
    await asyncio.sleep(TIMEOUT * 4)
    assert not transport.closed
    app.may_read.set()
    await until_closed(transport)  # the next head's clock starts once the answer is out
    assert status_of(transport.written) == 200
    assert bytes(transport.written).count(b"HTTP/1.1 408 ") == 1


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_app_a_disconnect(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    protocol.data_received(head(method="POST", extra="Content-Length: 10") + b"abc")
    await until_closed(transport)
    await settle()
    assert status_of(transport.written) == 408
    assert app.disconnects == 1


async def test_a_body_still_dribbling_after_the_response_is_cut_off_without_a_408(
    connect: Connect,
) -> None:
    protocol, transport, _ = await connect()

    async def answers_without_reading(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    protocol.app = answers_without_reading
    protocol.data_received(head(method="POST", extra="Content-Length: 1000") + b"abc")
    await settle()
    assert status_of(transport.written) == 401
    protocol.data_received(b"d")  # and so on, slowly
    await until_closed(transport)
    assert b"408" not in transport.written


async def test_time_the_server_is_not_reading_does_not_count_against_the_client(
    connect: Connect,
) -> None:
    protocol, transport, app = await connect()
    app.may_read.clear()  # the app is busy: uvicorn stops reading once 64 KiB are buffered
    size = 100 * 1024
    protocol.data_received(head(method="POST", extra=f"Content-Length: {size}"))
    protocol.data_received(b"a" * (size - 1))
    assert not transport.reading
    await asyncio.sleep(TIMEOUT * 4)
    assert not transport.closed
    app.may_read.set()  # the server reads again; the client never sends the last byte
    await until_closed(transport)
    assert status_of(transport.written) == 408
    assert app.disconnects == 1


async def test_without_bounds_of_its_own_the_protocol_enforces_the_settings(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_HEADER_COUNT", "10")
    get_settings.cache_clear()
    http_protocol._rules_for.cache_clear()
    try:
        protocol, transport, _ = await connect(bounds=None)
        protocol.data_received(head(headers=11))
        await until_closed(transport)
    finally:
        http_protocol._rules_for.cache_clear()
    assert status_of(transport.written) == 431
    assert b"at most 10 headers" in transport.written


async def test_timers_end_with_the_connection(connect: Connect) -> None:
    protocol, transport, _ = await connect(SLOW)
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    assert protocol._read_timer is not None
    transport.close()  # the client went away
    await settle()
    assert protocol._read_timer is None
