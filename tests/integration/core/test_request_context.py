"""Every response carries a request id, and every request leaves one access-log line."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.health.service import ReadinessProbe
from tests.conftest import LogReader


async def test_a_request_id_is_generated_when_none_is_sent(client: AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_sane_incoming_request_id_is_kept(client: AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "trace-abc.123:xyz"})
    assert response.headers["x-request-id"] == "trace-abc.123:xyz"


@pytest.mark.parametrize(
    "incoming",
    ["short", "x" * 129, "has space inside", "inject\u00e9d", "a;b=c<script>"],
)
async def test_an_unsafe_incoming_request_id_is_replaced(
    client: AsyncClient, incoming: str
) -> None:
    response = await client.get("/health/live", headers={b"X-Request-ID": incoming.encode()})
    returned = response.headers["x-request-id"]
    assert returned != incoming
    assert len(returned) == 32


async def test_errors_carry_the_same_request_id_in_body_and_header(client: AsyncClient) -> None:
    response = await client.get("/api/v1/unknown", headers={"X-Request-ID": "req-0001-abcd"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-0001-abcd"
    assert response.json()["request_id"] == "req-0001-abcd"


async def test_one_access_line_per_request_with_route_template(
    client: AsyncClient, log_lines: LogReader
) -> None:
    await client.get("/health/ready", headers={"X-Request-ID": "req-0002-abcd"})
    await client.get("/no/such/path")
    await client.get("/api/v1/accounts/3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de")
    access = [line for line in log_lines() if line["logger"] == "app.access"]
    assert len(access) == 3
    ready, missing, api = access
    assert ready["event"] == "request"
    assert ready["method"] == "GET"
    assert ready["route"] == "/health/ready"
    assert ready["status"] == 200
    assert ready["request_id"] == "req-0002-abcd"
    assert isinstance(ready["duration_ms"], float)
    assert missing["route"] is None
    assert missing["path"] == "/no/such/path"
    assert missing["status"] == 404
    # The template with its full prefix: one label per operation for the coming metrics.
    assert api["route"] == "/api/v1/accounts/{account_id}"
    assert api["status"] == 401


async def test_every_line_of_a_request_carries_its_id(
    app: FastAPI, client: AsyncClient, log_lines: LogReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.redis, "ping", _failing_ping)
    # A probe of its own: the session app's shared one may reuse an earlier result.
    fresh = ReadinessProbe(
        engine=app.state.engine, redis=app.state.redis, within_seconds=1, reuse_seconds=0
    )
    shared, app.state.readiness = app.state.readiness, fresh  # (monkeypatch cannot undo State)
    try:
        await client.get("/health/ready", headers={"X-Request-ID": "req-0003-abcd"})
    finally:
        app.state.readiness = shared
    lines = [line for line in log_lines() if line["logger"] in {"app.access", "app.health.service"}]
    assert {line["event"] for line in lines} == {"readiness_failed", "request"}
    assert {line["request_id"] for line in lines} == {"req-0003-abcd"}


async def _failing_ping() -> bool:
    raise ConnectionError("redis went away")
