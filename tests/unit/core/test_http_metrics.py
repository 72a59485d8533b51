"""The RED series are prometheus-fastapi-instrumentator's own, recorded as its functions would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import metrics

from app.core.http_metrics import RedMetrics
from app.main import LATENCY_BUCKETS

REQUESTS = [  # handler, method, status, seconds
    ("/health/live", "GET", 200, 0.0004),
    ("/health/live", "GET", 200, 0.002),
    ("/api/v1/payments", "POST", 201, 0.03),
    ("/api/v1/payments", "POST", 409, 0.02),
    ("none", "GET", 404, 0.0001),
    ("/api/v1/payments", "POST", 499, 4.0),
]


def _exposition(registry: CollectorRegistry) -> list[str]:
    # Each series' creation time differs between the two registries; everything else must not.
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


def test_red_metrics_record_what_the_librarys_functions_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    red = RedMetrics(ours, buckets=LATENCY_BUCKETS)
    functions = [
        metrics.requests(registry=theirs),
        metrics.latency(buckets=LATENCY_BUCKETS, should_include_status=False, registry=theirs),
    ]
    for handler, method, status, seconds in REQUESTS:
        red.record(handler=handler, method=method, status=status, seconds=seconds)
        info = metrics.Info(
            request=None,  # type: ignore[arg-type]  # the two series read only the fields below
            response=None,
            method=method,
            modified_handler=handler,
            modified_status=f"{status // 100}xx",
            modified_duration=seconds,
        )
        for function in functions:
            assert function is not None
            function(info)
    assert _exposition(ours) == _exposition(theirs)
    assert any(line.startswith("http_requests_total{") for line in _exposition(ours))
