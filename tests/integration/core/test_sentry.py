"""Sentry (SPEC §7): 5xx and failed tasks reported, 4xx not; tagged, scrubbed, no bodies, no locals.

The SDK is real. Most tests capture its envelopes with a Transport of their own; one sends
them over HTTP to a local stand-in of Sentry's ingest endpoint (a DSN on 127.0.0.1), as the
SDK does in production.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import sentry_sdk
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from taskiq import TaskiqMessage, TaskiqResult

from app.core.broker import TaskMetricsMiddleware
from app.core.config import Settings, get_settings
from app.core.logging import REDACTED
from app.core.sentry import init_sentry
from tests.integration.conftest import http_client, started_app

CARD = "4111 1111 1111 1111"
SECRET_PASSWORD = "correct-horse-battery-staple"


class Capture(Transport):
    """Keeps every event the SDK would have sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


crashing = APIRouter()


@crashing.post("/crash")
async def crash(body: dict[str, Any]) -> None:
    amount_in_cents = 12_345  # a local of money code: never sent
    password = SECRET_PASSWORD
    if amount_in_cents and password:
        raise RuntimeError(f"boom for card {CARD}")


@crashing.get("/conflict")
async def conflict() -> None:
    from app.ledger.errors import CurrencyMismatchError

    raise CurrencyMismatchError


def _settings() -> Settings:
    return get_settings().model_copy(
        update={"SENTRY_DSN": SecretStr("https://key@127.0.0.1:9/1"), "RELEASE": "test-release"}
    )


@pytest.fixture
def capture() -> Iterator[Capture]:
    transport = Capture()
    assert init_sentry(_settings(), transport=transport)
    yield transport
    sentry_sdk.init()  # off again: no DSN


@pytest.fixture
async def app(capture: Capture) -> AsyncIterator[FastAPI]:
    async with started_app(crashing) as application:
        yield application


async def test_a_500_is_reported_tagged_with_its_request_id_and_scrubbed(
    app: FastAPI, capture: Capture
) -> None:
    async with http_client(app) as http:
        response = await http.post(
            "/crash",
            json={"password": SECRET_PASSWORD, "card": CARD},
            headers={"Authorization": "Bearer secret-token-value", "Cookie": "session=abc"},
        )
    assert response.status_code == 500
    sentry_sdk.flush()
    (event,) = capture.events
    assert event["tags"]["request_id"] == response.headers["x-request-id"]
    expected = (get_settings().ENVIRONMENT.value, "test-release")
    assert (event["environment"], event["release"]) == expected
    text = json.dumps(event)
    for secret in (SECRET_PASSWORD, CARD, "secret-token-value", "session=abc", "12345"):
        assert secret not in text, secret
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert REDACTED in exception["value"]  # the card number in the message
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
    assert "data" not in event.get("request", {})  # no request body


async def test_4xx_answers_are_not_reported(app: FastAPI, capture: Capture) -> None:
    async with http_client(app) as http:
        assert (await http.get("/conflict")).status_code == 422
        assert (await http.get("/no-such-page")).status_code == 404
        assert (await http.get("/api/v1/users/me")).status_code == 401
        assert (await http.post("/crash", content=b"{not json")).status_code == 422
    sentry_sdk.flush()
    assert capture.events == []


def test_a_failed_task_run_is_reported_with_its_task(capture: Capture) -> None:
    message = TaskiqMessage(
        task_id="t-9", task_name="deposits.complete", labels={}, args=[], kwargs={}
    )
    error = RuntimeError("provider answered nonsense")
    result: TaskiqResult[None] = TaskiqResult(
        is_err=True, return_value=None, execution_time=0.1, error=error
    )
    TaskMetricsMiddleware().post_execute(message, result)
    ok: TaskiqResult[None] = TaskiqResult(is_err=False, return_value=None, execution_time=0.1)
    TaskMetricsMiddleware().post_execute(message, ok)  # a success reports nothing
    sentry_sdk.flush()
    (event,) = capture.events
    assert event["exception"]["values"][0]["value"] == "provider answered nonsense"


def test_without_a_dsn_nothing_starts() -> None:
    assert init_sentry(get_settings()) is False


class Ingest(BaseHTTPRequestHandler):
    """Sentry's envelope endpoint, as far as the SDK needs it."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Ingest.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


async def test_the_real_sdk_delivers_a_report_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Ingest.received = []
    dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    settings = get_settings().model_copy(update={"SENTRY_DSN": SecretStr(dsn)})
    try:
        assert init_sentry(settings)
        async with started_app(crashing) as application, http_client(application) as http:
            response = await http.post("/crash", json={})
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.init()
        server.shutdown()
        server.server_close()
    assert response.status_code == 500
    paths = [path for path, _ in Ingest.received]
    assert "/api/42/envelope/" in paths, paths
    envelope = b"\n".join(body for _, body in Ingest.received)
    assert response.headers["x-request-id"].encode() in envelope
    assert CARD.encode() not in envelope
