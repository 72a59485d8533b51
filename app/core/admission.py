"""Admission control: a bounded number of requests run at once; a bounded queue waits briefly.

Without it, an overload grows without limit inside the process: every accepted request holds
memory and waits in the database or Redis pool queues, a client that gave up is still worked
for, and the process keeps burning CPU long after the load has stopped (issue 14 measured
requests finishing 96 s after their client left). With it:

- at most `MAX_CONCURRENT_REQUESTS` run at once (a few times the DB pool: enough to keep the
  pools busy, few enough that nothing waits long inside them);
- up to `ADMISSION_QUEUE_LIMIT` more wait for a slot, each for at most `ADMISSION_WAIT_SECONDS`;
- anything beyond is answered at once: 503 `service_unavailable` with `Retry-After`, in the
  error shape, costing microseconds instead of a slot.

Probes (`/health/…`) are never queued: an orchestrator must see a live process under load.
At 64 and 256 concurrent connections the queue absorbs the burst (SPEC §4: no error, no
stall); only a sustained overload beyond the queue's patience is refused.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import app_error_response
from app.core.errors import ServiceUnavailableError, request_id_of_scope
from app.core.logging import get_logger

logger = get_logger(__name__)


class _Gate:
    """One class of requests: `limit` run at once, `queue_limit` wait up to `wait_seconds`."""

    def __init__(self, *, limit: int, queue_limit: int, wait_seconds: float) -> None:
        self.queue_limit = queue_limit
        self.wait_seconds = wait_seconds
        self.slots = asyncio.Semaphore(limit)
        self.waiting = 0

    async def admit(self) -> bool:
        if not self.slots.locked():
            await self.slots.acquire()  # free slot: returns at once
            return True
        if self.waiting >= self.queue_limit:
            logger.info("admission_refused", reason="queue_full", waiting=self.waiting)
            return False
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self.slots.acquire()
            return True
        except TimeoutError:
            logger.info("admission_refused", reason="waited_too_long", waiting=self.waiting)
            return False
        finally:
            self.waiting -= 1


class AdmissionMiddleware:
    """Run at most `limit` requests at once; queue `queue_limit` more for `wait_seconds`.

    `separate` gives path prefixes a gate of their own with the same bounds: password
    endpoints spend seconds waiting for an Argon2 slot under a login flood, and must not take
    the slots every other request needs (SPEC §4: logins don't hurt anyone else).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        queue_limit: int,
        wait_seconds: float,
        separate: tuple[str, ...] = (),
        exempt_prefixes: tuple[str, ...] = ("/health/",),
    ) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes

        def gate() -> _Gate:
            return _Gate(limit=limit, queue_limit=queue_limit, wait_seconds=wait_seconds)

        self._default = gate()
        self._separate = [(prefix, gate()) for prefix in separate]

    def _gate(self, path: str) -> _Gate:
        for prefix, gate in self._separate:
            if path.startswith(prefix):
                return gate
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit, queue or refuse one HTTP request."""
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        gate = self._gate(scope["path"])
        if not await gate.admit():
            error = ServiceUnavailableError(
                "The service is busy. Retry after the time given in Retry-After.",
                headers={"Retry-After": "1"},
            )
            response = app_error_response(error, request_id=request_id_of_scope(scope))
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.slots.release()


# How long a request runs before a reader starts watching for its client leaving. Most requests
# finish sooner, and then never pay for the reader (a task, a queue and an event: ~7 % of a
# cached read); a request worth abandoning runs far longer than this.
WATCH_AFTER_SECONDS = 0.05


class CancelOnDisconnectMiddleware:
    """Stop working on a request whose client has gone before its answer started.

    Starlette runs an endpoint to the end even if the client hung up long ago; under overload
    that is most of the work. Here, once a request has run for `watch_after` seconds, one task
    becomes the only reader of the server's `receive`: it hands each message to the app (never
    more than one ahead, so memory stays bounded) and, on `http.disconnect` before the answer
    started, cancels the request. Until then the app reads `receive` itself, and a disconnect
    it reads cancels the request the same way. The transaction rolls back as for any error; an
    idempotent retry finds no stored outcome and runs again.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        exempt_prefixes: tuple[str, ...] = ("/health/",),
        watch_after: float = WATCH_AFTER_SECONDS,
    ) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes
        self.watch_after = watch_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, cancelling it if the client disconnects first."""
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        request_task = asyncio.current_task()
        if request_task is None:  # pragma: no cover - ASGI servers always run inside a task
            await self.app(scope, receive, send)
            return
        # A message, or the error reading it raised (e.g. the body limit's 413), for the app.
        ahead: asyncio.Queue[Message | Exception] | None = None
        reader: asyncio.Task[None] | None = None
        gone = answered = reading = watch_pending = False

        def disconnected() -> None:
            nonlocal gone
            gone = True
            if not answered:
                request_task.cancel()

        async def pump(queue: asyncio.Queue[Message | Exception]) -> None:
            while True:
                try:
                    message = await receive()
                except Exception as error:  # noqa: BLE001 - handed to the app, raised there
                    await queue.put(error)
                    return
                if message["type"] == "http.disconnect":
                    disconnected()
                    if not queue.full():
                        queue.put_nowait(message)
                    return
                await queue.put(message)  # waits until the app took the previous one

        def watch() -> None:
            nonlocal ahead, reader, watch_pending
            if reading:  # the app is inside `receive`: the reader takes over after that read
                watch_pending = True
                return
            ahead = asyncio.Queue(maxsize=1)
            reader = asyncio.create_task(pump(ahead))

        async def app_receive() -> Message:
            nonlocal reading, watch_pending
            if ahead is None:  # not watched yet: the app reads for itself
                reading = True
                try:
                    message = await receive()
                finally:
                    reading = False
                if message["type"] == "http.disconnect":
                    disconnected()
                    await asyncio.sleep(0)  # the cancellation lands here, as in `ahead.get()`
                elif watch_pending:
                    watch_pending = False
                    watch()
                return message
            if ahead.empty() and gone:
                return {"type": "http.disconnect"}
            item = await ahead.get()
            if isinstance(item, Exception):
                raise item
            return item

        async def app_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True  # too late to abandon: let the answer finish
            await send(message)

        timer = asyncio.get_running_loop().call_later(self.watch_after, watch)
        try:
            await self.app(scope, app_receive, app_send)
        except asyncio.CancelledError:
            # Ours (the client left), or the server's (shutdown)? Only ours is swallowed.
            if gone and not answered and request_task.uncancel() == 0:
                logger.info("request_abandoned", path=scope["path"])
                return
            raise
        finally:
            timer.cancel()
            if reader is not None:
                reader.cancel()
