"""Run the API: one uvicorn process, with a drain phase before the graceful shutdown.

`python -m app.server` is what containers and `make run` start. On SIGTERM (and on Ctrl-C in
production):

1. **Drain** (`DRAIN_SECONDS`): `/health/ready` answers 503 so load balancers and Kubernetes
   stop sending new traffic, while the process keeps serving whatever still arrives.
2. **Graceful shutdown** (uvicorn): stop accepting, let in-flight requests finish within
   `GRACEFUL_SHUTDOWN_SECONDS`, then run the lifespan's shutdown (close DB and Redis pools).
3. **Exit 0.** A second signal skips the rest of the drain; a second Ctrl-C forces the exit.

Outside production Ctrl-C (SIGINT) skips the drain: a developer at a terminal has no load
balancer to wait for. In-flight requests still finish (step 2).

One process per container: scale with replicas, not `--workers` (ADR 0010). The HTTP
protocol is httptools with bounded request heads and read timeouts (app.core.http_protocol,
ADR 0015).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
from types import FrameType

import uvicorn

from app.core.config import Environment, get_settings
from app.core.http_protocol import BoundedHttpToolsProtocol, RequestBounds
from app.core.lifecycle import is_draining, start_draining
from app.core.logging import get_logger

logger = get_logger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain phase, exiting 0 after a requested shutdown."""

    def __init__(
        self, config: uvicorn.Config, *, drain_seconds: float, drain_on_interrupt: bool = True
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.drain_on_interrupt = drain_on_interrupt
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Remember the loop, so a signal handler can schedule the end of the drain."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start (the app's lifespan, then the sockets), then freeze what start-up made."""
        await super().startup(sockets)
        # Modules, routes, schemas and pools live as long as the process: frozen, the cyclic
        # garbage collector stops re-scanning them (~160,000 objects) in every full
        # collection, which took a few per cent of a busy process's CPU (issue 14).
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain, then shut down. Later signals: shut down now (or force)."""
        # The signal is deliberately not recorded in uvicorn's `_captured_signals`: uvicorn
        # would re-raise it after the shutdown and the process would exit 143, not 0.
        if self.should_exit:
            self.force_exit = sig == signal.SIGINT
            return
        second_signal = is_draining()
        start_draining()
        interrupted = sig == signal.SIGINT and not self.drain_on_interrupt
        if second_signal or interrupted or self._loop is None or self.drain_seconds <= 0:
            logger.info("stopping", signal=signal.Signals(sig).name)
            self.should_exit = True
            return
        logger.info("draining", signal=signal.Signals(sig).name, seconds=self.drain_seconds)
        self._loop.call_soon_threadsafe(self._loop.call_later, self.drain_seconds, self._end_drain)

    def _end_drain(self) -> None:
        self.should_exit = True


def main() -> int:
    """Entry point of `python -m app.server`."""
    settings = get_settings()
    config = uvicorn.Config(
        "app.main:app",
        host=settings.HOST,
        port=settings.PORT,
        access_log=False,  # our request-context middleware writes the access log
        log_config=None,  # keep the structlog pipeline create_app() installs
        # X-Forwarded-For is handled inside the app, from TRUSTED_PROXIES (create_app).
        proxy_headers=False,
        timeout_graceful_shutdown=settings.GRACEFUL_SHUTDOWN_SECONDS,
        # httptools, with bounded request heads and read timeouts (ADR 0015).
        http=BoundedHttpToolsProtocol.with_bounds(RequestBounds.from_settings(settings)),
    )
    server = DrainingServer(
        config,
        drain_seconds=settings.DRAIN_SECONDS,
        drain_on_interrupt=settings.ENVIRONMENT is Environment.PRODUCTION,
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
