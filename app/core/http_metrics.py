"""RED metrics per route template: prometheus-fastapi-instrumentator's series, recorded cheaply.

The series are the library's own (`metrics.requests`, `metrics.latency`): `http_requests_total
{handler, method, status}` and `http_request_duration_seconds{handler, method}`, with `status`
grouped as `2xx`… and `handler` the route template — never a raw path; requests no route
matched are one `none` handler. Only its middleware is replaced (ADR 0030): the library's
matches the path against the routes a second time on every request and builds a `Request`, a
`Response` and their headers to hand its metric functions, about a fifth of the cost of a
probe. Here the route is read after the request, from the scope where the router left it.

The library's metric functions are still what defines the two series (`RedMetrics` keeps the
objects they register), but a request does not go through them: each looks its label values
up in Prometheus' client on every call: 9 to 12 µs a request, against 3 to 4 for the same two
updates on children looked up once (ADR 0030, amended). The children are kept per handler,
method and status class, all bounded: route templates and `none`, the methods the server's
parser knows, five classes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MetricT = TypeVar("MetricT", Counter, Histogram)


class _Keeping(CollectorRegistry):
    """Registers each collector in `registry`, and keeps it.

    The library's metric functions register their metric and hand back only a function that
    updates it, looking the labels up on every call.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(auto_describe=False)
        self._registry = registry
        self.kept: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Register in the real registry, and keep it."""
        self._registry.register(collector)
        self.kept.append(collector)


def _one(kept: list[Collector], kind: type[MetricT]) -> MetricT:
    (metric,) = (collector for collector in kept if isinstance(collector, kind))
    return metric


class RedMetrics:
    """The two series the dashboard and the alerts read, made by the library's functions."""

    def __init__(self, registry: CollectorRegistry, *, buckets: Sequence[float]) -> None:
        keeping = _Keeping(registry)
        metrics.requests(registry=keeping)
        metrics.latency(buckets=buckets, should_include_status=False, registry=keeping)
        # `http_requests_total{handler, method, status}`, `http_request_duration_seconds{handler,
        # method}`: the label order of the library's functions.
        self._requests = _one(keeping.kept, Counter)
        self._latency = _one(keeping.kept, Histogram)
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def record(self, *, handler: str, method: str, status: int, seconds: float) -> None:
        """Count one request and time it; `status` is grouped by class (`2xx`, `4xx`…)."""
        key = (handler, method, f"{status // 100}xx")
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(*key),
                self._latency.labels(handler, method),
            )
        children[0].inc()
        children[1].observe(seconds)


class HttpMetricsMiddleware:
    """Count each HTTP request and time it, labelled by its route template."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RedMetrics,
        excluded_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
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
            route = scope.get("route")
            self.metrics.record(
                handler=getattr(route, "path", None) or "none",
                method=scope["method"],
                status=status or 499,
                seconds=time.perf_counter() - started,
            )
