"""GET /metrics (SPEC §7): RED per route template, the business counters, the DB pool.

The label test drives traffic full of ids and unknown paths, then reads every label value of
the exposition: none may be an id or a raw path, or each customer would make new time series.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import get_settings
from app.core.errors import ServiceUnavailableError
from app.core.metrics import PAYMENTS, count_after_commit
from app.deposits.provider import FakeProvider
from app.deposits.tasks import complete_deposit
from tests.factories import (
    SignedIn,
    adjust,
    idempotency_headers,
    make_deposit,
    open_account,
    payment_body,
    signed_in_user,
)
from tests.metrics import sample

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def _samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


async def _scrape(http: AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_no_label_value_is_an_id_or_a_raw_path(
    live_http: AsyncClient, live_app: FastAPI
) -> None:
    user = await signed_in_user(live_http)
    stray = uuid.uuid4().hex
    for _ in range(3):
        account_id = uuid.uuid4()
        await live_http.get(f"/api/v1/accounts/{account_id}", headers=user.headers)  # 404
        await live_http.get(f"/api/v1/accounts/{account_id}")  # 401
        await live_http.get(f"/api/v1/deposits/{uuid.uuid4()}", headers=user.headers)
        await live_http.get(f"/no-such-page/{stray}/{uuid.uuid4()}")  # no route at all
        await live_http.post(f"/api/v1/payments/{uuid.uuid4()}", headers=user.headers)  # 405
    await live_http.get("/metrics")
    text = await _scrape(live_http)

    templates = {route.path for route in live_app.routes if isinstance(route, APIRoute)}
    handlers = set()
    for item in _samples(text):
        for name, value in item.labels.items():
            assert not UUID.search(value), (item.name, name, value)
            assert stray not in value, (item.name, name, value)
            assert user.email not in value, (item.name, name, value)
        if item.name == "http_requests_total":
            handlers.add(item.labels["handler"])
    assert "/api/v1/accounts/{account_id}" in handlers
    assert "none" in handlers  # every path no route matches, as one series
    assert handlers <= templates | {"none"}, handlers - templates
    assert "/metrics" not in handlers  # the scrape does not count itself


def _live_served(text: str, method: str) -> float:
    """`/health/live` answers counted as 2xx for `method` in an exposition."""
    return sum(
        s.value
        for s in _samples(text)
        if s.name == "http_requests_total"
        and s.labels == {"handler": "/health/live", "method": method, "status": "2xx"}
    )


async def test_red_metrics_count_requests_by_template_status_class_and_duration(
    live_http: AsyncClient,
) -> None:
    before = _live_served(await _scrape(live_http), "GET")
    for _ in range(3):
        assert (await live_http.get("/health/live")).status_code == 200
    text = await _scrape(live_http)
    assert _live_served(text, "GET") == before + 3
    durations = {
        s.labels["le"]
        for s in _samples(text)
        if s.name == "http_request_duration_seconds_bucket"
        and s.labels.get("handler") == "/health/live"
    }
    assert {"0.005", "0.1", "1.0", "+Inf"} <= durations  # fine enough for p50 / p95 / p99


async def test_head_requests_count_under_their_route_and_latency_has_no_status_label(
    live_http: AsyncClient,
) -> None:
    before = _live_served(await _scrape(live_http), "HEAD")
    assert (await live_http.head("/health/live")).status_code == 200
    text = await _scrape(live_http)
    # HEAD runs as GET inside; the route is still known.
    assert _live_served(text, "HEAD") == before + 1
    label_names = {
        frozenset(s.labels)
        for s in _samples(text)
        if s.name == "http_request_duration_seconds_bucket"
    }
    assert label_names == {frozenset({"handler", "method", "le"})}  # a status would double them


async def test_the_db_pool_is_reported_in_use_and_size(live_http: AsyncClient) -> None:
    values = {s.name: s.value for s in _samples(await _scrape(live_http))}
    settings = get_settings()
    assert values["ledger_db_pool_size"] == settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW
    assert 0 <= values["ledger_db_pool_in_use"] <= values["ledger_db_pool_size"]


async def _funded_pair(
    http: AsyncClient, admin: SignedIn, amount: int
) -> tuple[SignedIn, dict[str, object], dict[str, object]]:
    payer = await signed_in_user(http)
    source = await open_account(http, payer)
    destination = await open_account(http, await signed_in_user(http))
    await adjust(http, admin, source["id"], amount)
    return payer, source, destination


async def test_payments_by_outcome_and_replays_by_endpoint(
    live_http: AsyncClient, live_admin: SignedIn
) -> None:
    payer, source, destination = await _funded_pair(live_http, live_admin, 1000)
    before = {
        "succeeded": sample("ledger_payments_total", outcome="succeeded"),
        "refused": sample("ledger_payments_total", outcome="insufficient_funds"),
        "replays": sample("ledger_idempotent_replays_total", endpoint="POST /api/v1/payments"),
    }
    headers = idempotency_headers(payer)
    body = payment_body(source["id"], destination["id"], 600)
    assert (await live_http.post("/api/v1/payments", json=body, headers=headers)).status_code == 201
    again = await live_http.post("/api/v1/payments", json=body, headers=headers)  # a replay
    assert again.headers["idempotent-replayed"] == "true"
    too_much = payment_body(source["id"], destination["id"], 600)  # 400 left
    refused = await live_http.post(
        "/api/v1/payments", json=too_much, headers=idempotency_headers(payer)
    )
    assert refused.status_code == 409
    assert sample("ledger_payments_total", outcome="succeeded") == before["succeeded"] + 1
    assert sample("ledger_payments_total", outcome="insufficient_funds") == before["refused"] + 1
    assert (
        sample("ledger_idempotent_replays_total", endpoint="POST /api/v1/payments")
        == before["replays"] + 1
    )
    # Exposed by the API next to its HTTP metrics.
    assert 'ledger_payments_total{outcome="succeeded"}' in await _scrape(live_http)


async def test_a_counter_counts_only_what_commits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    outcome = f"test_{uuid.uuid4().hex[:8]}"

    async def payment_that_fails_to_commit() -> None:
        async with sessions() as session, session.begin():
            count_after_commit(session, PAYMENTS.labels(outcome=outcome))
            raise RuntimeError  # rolled back: the payment never was

    with pytest.raises(RuntimeError):
        await payment_that_fails_to_commit()
    assert sample("ledger_payments_total", outcome=outcome) == 0
    async with sessions() as session, session.begin():
        count_after_commit(session, PAYMENTS.labels(outcome=outcome))
        assert sample("ledger_payments_total", outcome=outcome) == 0  # not before the commit
    assert sample("ledger_payments_total", outcome=outcome) == 1


async def test_deposits_by_outcome(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    before = {
        outcome: sample("ledger_deposits_total", outcome=outcome)
        for outcome in ("succeeded", "failed")
    }
    provider = FakeProvider(latency_ms=0)
    for amount in (1500, 1513, 1577):  # succeeded, declined, pending (not finished: not counted)
        _, deposit_id = await make_deposit(live_http, user, amount)
        await complete_deposit(uuid.UUID(deposit_id), sessions=sessions, provider=provider)
    assert {
        outcome: sample("ledger_deposits_total", outcome=outcome) - before[outcome]
        for outcome in before
    } == {"succeeded": 1, "failed": 1}


async def test_cache_reads_by_cache_and_result(live_http: AsyncClient) -> None:
    user = await signed_in_user(live_http)
    account = await open_account(live_http, user)
    before = {
        result: sample("ledger_cache_requests_total", cache="account", result=result)
        for result in ("hit", "miss")
    }
    for _ in range(2):  # a miss that loads and stores, then a hit
        response = await live_http.get(f"/api/v1/accounts/{account['id']}", headers=user.headers)
        assert response.status_code == 200
    assert {
        result: sample("ledger_cache_requests_total", cache="account", result=result)
        - before[result]
        for result in before
    } == {"hit": 1, "miss": 1}


async def test_readiness_is_a_gauge_for_its_alert(
    live_http: AsyncClient, live_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {s.name: s.value for s in _samples(await _scrape(live_http))}
    assert values["ledger_ready"] == 1

    async def not_ready() -> None:
        raise ServiceUnavailableError("Not ready: redis unreachable.")

    monkeypatch.setattr(live_app.state.readiness, "check", not_ready)
    values = {s.name: s.value for s in _samples(await _scrape(live_http))}
    assert values["ledger_ready"] == 0


async def test_fastapis_own_opentelemetry_stays_off(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's telemetry is its own (ADR 0030). FastAPI's native OpenTelemetry, left on,
    # asks OpenTelemetry for its providers on every request; configured, it would also trace
    # and meter every request beside our metrics. Here the providers look configured.
    import opentelemetry._logs
    import opentelemetry.metrics
    import opentelemetry.trace

    asked: list[str] = []

    def provider(kind: str) -> object:
        asked.append(kind)
        return object()  # not one of OpenTelemetry's deferred providers: "configured"

    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: provider("trace"))
    monkeypatch.setattr(opentelemetry.metrics, "get_meter_provider", lambda: provider("metrics"))
    monkeypatch.setattr(opentelemetry._logs, "get_logger_provider", lambda: provider("logs"))
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert asked == []
