"""Bounds on the request head and read timeouts, enforced in uvicorn's httptools protocol.

uvicorn with httptools accepts a request head of any size and waits for it, and for the
body, as long as the client likes (its `h11_max_incomplete_event_size` applies to h11 only;
`timeout_keep_alive` only covers idle time between requests). Each bound below closes one
of those doors; ADR 0015 says why it is done here and how the defaults were chosen.

- **MAX_HEADER_BYTES** — the request line and headers together (and trailers after a
  chunked body). httptools holds a header in memory until its last byte has arrived, so two
  64 MB headers grew the process by 130-190 MB before anything saw them. The bytes are
  counted as they are read, and the parser is never fed past the bound: beyond it, **431**.
- **MAX_HEADER_COUNT** — every header becomes Python objects and is scanned by each
  middleware; thousands of tiny ones fit in the byte bound. One more than allowed: **431**.
- **HEADER_READ_TIMEOUT_SECONDS** — slow-loris: a client that dribbles its head holds a
  connection, a file descriptor and a parser for as long as it likes. The whole head must
  arrive within this time of the connection (first request) or of its first byte (later
  ones), or the answer is **408**.
- **BODY_READ_TIMEOUT_SECONDS** — the same for the body, from the end of the head: **408**
  if no response has started yet (the app's `receive()` sees `http.disconnect`), otherwise
  the connection is just closed.

Each refusal ends the connection (after the answers still owed to earlier pipelined
requests): what the client sends next cannot be trusted to start a new request. Time while
the server itself is not reading (flow control, `Expect: 100-continue` not yet answered)
never counts against the client.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.core.config import Settings, get_settings
from app.core.errors import PROBLEM_MEDIA_TYPE, framework_code, problem_body
from app.core.logging import get_logger

logger = get_logger(__name__)

REQUEST_TIMEOUT = 408
HEADERS_TOO_LARGE = 431


@dataclass(frozen=True, slots=True)
class RequestBounds:
    """How much request head a connection may send, and how slowly."""

    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestBounds:
        """The bounds set by MAX_HEADER_BYTES, MAX_HEADER_COUNT and the two read timeouts."""
        return cls(
            max_header_bytes=settings.MAX_HEADER_BYTES,
            max_header_count=settings.MAX_HEADER_COUNT,
            header_timeout=settings.HEADER_READ_TIMEOUT_SECONDS,
            body_timeout=settings.BODY_READ_TIMEOUT_SECONDS,
        )


@dataclass(frozen=True, slots=True)
class _Rules:
    """Bounds and the answers they give, rendered once per set of bounds."""

    bounds: RequestBounds
    answers: Mapping[int, bytes]  # status -> response headers after the status line, and body


def _answer(status: int, detail: str) -> bytes:
    body = json.dumps(
        problem_body(
            status_code=status, code=framework_code(status), detail=detail, request_id=None
        ),
        separators=(",", ":"),
    ).encode()
    head = (
        f"content-type: {PROBLEM_MEDIA_TYPE}\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@functools.cache
def _rules_for(configured: RequestBounds | None) -> _Rules:
    bounds = configured or RequestBounds.from_settings(get_settings())
    return _Rules(
        bounds=bounds,
        answers={
            HEADERS_TOO_LARGE: _answer(
                HEADERS_TOO_LARGE,
                f"The request head is too large: at most {bounds.max_header_bytes} bytes "
                f"of request line and headers, and at most {bounds.max_header_count} headers.",
            ),
            REQUEST_TIMEOUT: _answer(
                REQUEST_TIMEOUT,
                f"The request did not arrive in time: the request line and headers must "
                f"arrive within {bounds.header_timeout:g} s, the body within "
                f"{bounds.body_timeout:g} s after them.",
            ),
        },
    )


class _Phase(enum.Enum):
    HEAD = "head"  # waiting for, or reading, a request line and headers
    BODY = "body"  # the head is complete, the body is not


class _TooManyHeadersError(Exception):
    """Raised inside the parser's callback: it stops parsing at once, nothing else runs."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and read timeouts.

    uvicorn builds one protocol per connection with fixed arguments, so the bounds live on
    the class: `with_bounds()` makes a subclass that enforces given ones; this class itself
    enforces the settings' (`uvicorn --http app.core.http_protocol:BoundedHttpToolsProtocol`).
    """

    bounds: ClassVar[RequestBounds | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        rules = _rules_for(self.bounds)
        self._bounds = rules.bounds
        self._answers = rules.answers
        self._phase = _Phase.HEAD
        self._head_begun = False
        # Bytes fed to the parser since it last handed something on (a complete head, body
        # bytes, a complete message): what it may be holding, such as an unfinished header.
        self._unparsed = 0
        self._progress = 0  # bumped each time it does hand something on
        self._read_timer: asyncio.TimerHandle | None = None
        self._refusing: int | None = None
        self._done = False  # refused, upgraded or lost: feed nothing more, arm no timer

    @classmethod
    def with_bounds(cls, bounds: RequestBounds) -> type[BoundedHttpToolsProtocol]:
        """A protocol class for `uvicorn.Config(http=...)` that enforces `bounds`."""
        namespace = {"bounds": bounds, "__module__": cls.__module__}
        return cast(type[BoundedHttpToolsProtocol], type(cls.__name__, (cls,), namespace))

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request: a silent client is as slow as a slow one."""
        super().connection_made(transport)
        self._start_read_timer(self._bounds.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock; uvicorn tells the app the client has gone."""
        self._done = True
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than the head bound still allows, then set the clock."""
        if self._done:
            return  # refused: whatever still arrives is dropped unread
        self._unset_keepalive_if_required()
        limit = self._bounds.max_header_bytes
        rest = memoryview(data)
        while rest and not self._done:
            room = limit - self._unparsed
            if room <= 0:
                self._refuse(HEADERS_TOO_LARGE, reason="header_bytes")
                return
            piece, rest = rest[:room], rest[room:]
            progress = self._progress
            self._feed(piece)
            # When the parser handed something on during this piece, the bytes after that
            # point are not counted: a pipelined request's head may exceed the bound by up
            # to one piece (at most the bound again) before it is refused.
            self._unparsed = self._unparsed + len(piece) if self._progress == progress else 0
        self._set_read_timer()

    def _feed(self, piece: memoryview) -> None:
        # uvicorn's data_received, with the head bound's refusal in place of its 400.
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self._refusing is not None:
                self._refuse(self._refusing, reason="header_count")
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self._done = True
            self._cancel_read_timer()
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection to the WebSocket protocol; our clock no longer applies."""
        self._done = True
        self._cancel_read_timer()
        super().handle_websocket_upgrade()

    # httptools parser callbacks

    def on_message_begin(self) -> None:
        """A request starts: its head's clock starts after this read (data_received)."""
        super().on_message_begin()
        self._head_begun = True

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count headers (and trailers) as the parser completes them."""
        super().on_header(name, value)
        if len(self.headers) > self._bounds.max_header_count:
            self._refusing = HEADERS_TOO_LARGE
            raise _TooManyHeadersError

    def on_headers_complete(self) -> None:
        """The head is in: stop its clock; the body's starts after this read."""
        self._progress += 1
        self._phase = _Phase.BODY
        self._head_begun = False
        self._cancel_read_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Body bytes are progress: they are the app's to bound (MAX_BODY_BYTES), not ours."""
        self._progress += 1
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The request is in: stop the body's clock. Idle time is uvicorn's keep-alive."""
        self._progress += 1
        self._phase = _Phase.HEAD
        self._cancel_read_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """An answer is out: a next request the client has already begun is timed from now."""
        super().on_response_complete()
        self._set_read_timer()

    # Clock and refusals

    def _set_read_timer(self) -> None:
        if self._done or self._read_timer is not None:
            return
        if self._phase is _Phase.BODY:
            self._start_read_timer(self._bounds.body_timeout)
        elif (self._head_begun or self._unparsed) and self._no_response_pending():
            # While an answer is pending the client may well wait for it before it goes on.
            self._start_read_timer(self._bounds.header_timeout)

    def _start_read_timer(self, seconds: float) -> None:
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out, seconds)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self, seconds: float) -> None:
        self._read_timer = None
        if self._done:
            return
        waiting_to_continue = self._phase is _Phase.BODY and self.cycle.waiting_for_100_continue
        if self.flow.read_paused or waiting_to_continue:
            # The server, not the client, is holding things up: give it a fresh period.
            self._start_read_timer(seconds)
            return
        self._refuse(REQUEST_TIMEOUT, reason=f"{self._phase.value}_timeout")

    def _no_response_pending(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _refuse(self, status: int, *, reason: str) -> None:
        """Answer `status` if this request can still be answered, and close the connection."""
        self._done = True
        self._cancel_read_timer()
        client = self.client[0] if self.client else None
        logger.warning("request_refused", status=status, reason=reason, client=client)
        cycle = self.cycle
        if self._phase is _Phase.HEAD:
            if not self._no_response_pending():
                # A pipelined request: answers go out in order, and earlier ones are still
                # being made. They are sent, then the connection closes; nothing more is read.
                cycle.keep_alive = False
                self.flow.pause_reading()
                return
            answerable = True
        else:
            # A queued (pipelined) request's answer cannot go first: it gets none.
            answerable = not self.pipeline and not cycle.response_started
            if not cycle.response_complete:
                cycle.disconnected = True  # the app's receive() now gets http.disconnect
                cycle.message_event.set()
        if answerable:
            content = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.append(self._answers[status])
            self.transport.write(b"".join(content))
        self.transport.close()
