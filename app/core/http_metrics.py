"""RED metrics per route template: prometheus-fastapi-instrumentator's series, recorded cheaply.

The series are the library's own (`metrics.requests`, `metrics.latency`): `http_requests_total
{handler, method, status}` and `http_request_duration_seconds{handler, method}`, with `status`
grouped as `2xx`… and `handler` the route template — never a raw path; requests no route
matched are one `none` handler. Only its middleware is replaced (ADR 0030): the library's
matches the path against the routes a second time on every request and builds a `Request`, a
`Response` and their headers to hand its metric functions, about a fifth of the cost of a
probe. Here the route is read after the request, from the scope where the router left it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Instrumentation = Callable[[metrics.Info], None]


def red_instrumentations(
    registry: CollectorRegistry, *, buckets: Sequence[float]
) -> list[Instrumentation]:
    """The two series the dashboard and the alerts read, in `registry`."""
    made = (
        metrics.requests(registry=registry),
        metrics.latency(buckets=buckets, should_include_status=False, registry=registry),
    )
    return [instrumentation for instrumentation in made if instrumentation is not None]


class HttpMetricsMiddleware:
    """Count each HTTP request and time it, labelled by its route template."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        instrumentations: Sequence[Instrumentation],
        excluded_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.instrumentations = tuple(instrumentations)
        self.excluded_paths = excluded_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; record its status and duration once it is over, even if it raised."""
        if scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = status or 500  # what the request context middleware answers for it
            raise
        finally:
            # Returned (or was cancelled) without an answer: abandoned by its client, a 499 as
            # in the access log, not a server error that would page someone under overload.
            status = status or 499
            route = scope.get("route")
            info = metrics.Info(
                request=None,  # type: ignore[arg-type]  # the two series read only the fields below
                response=None,
                method=scope["method"],
                modified_handler=getattr(route, "path", None) or "none",
                modified_status=f"{status // 100}xx",
                modified_duration=time.perf_counter() - started,
            )
            for instrumentation in self.instrumentations:
                instrumentation(info)
