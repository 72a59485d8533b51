"""Bodies over MAX_BODY_BYTES are a 413 in the error shape, refused before they are read."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from starlette.types import Message

from app.core.config import get_settings
from tests.integration.conftest import asgi_scope


async def _call(
    app: FastAPI, scope: dict[str, object], chunks: list[bytes]
) -> tuple[list[Message], int]:
    """Run one request through the ASGI app; return what it sent and how many chunks it read."""
    sent: list[Message] = []
    read = 0

    async def receive() -> Message:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {
                "type": "http.request",
                "body": chunks[read - 1],
                "more_body": read < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, read


def _status_and_body(sent: list[Message]) -> tuple[int, dict[str, object]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    return start["status"], json.loads(body)


async def test_a_declared_oversized_body_is_refused_without_reading_it(app: FastAPI) -> None:
    declared = 51 * 1024 * 1024  # the attack: a 51 MB JSON body on an anonymous endpoint
    scope = asgi_scope(
        "POST",
        "/api/v1/auth/refresh",
        [(b"content-type", b"application/json"), (b"content-length", str(declared).encode())],
    )
    sent, read = await _call(app, scope, [b"{" * 65536] * 800)
    status, body = _status_and_body(sent)
    assert status == 413
    assert body["error"] == "payload_too_large"
    assert str(get_settings().MAX_BODY_BYTES) in str(body["detail"])
    assert read == 0


async def test_a_streamed_oversized_body_stops_being_read_at_the_limit(app: FastAPI) -> None:
    limit = get_settings().MAX_BODY_BYTES
    chunk = b" " * 16384
    scope = asgi_scope("POST", "/api/v1/auth/refresh", [(b"content-type", b"application/json")])
    sent, read = await _call(app, scope, [chunk] * 800)  # ~13 MB, no Content-Length
    status, body = _status_and_body(sent)
    assert status == 413
    assert body["error"] == "payload_too_large"
    assert read * len(chunk) <= limit + len(chunk)


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register"])
async def test_forms_and_json_alike_are_bounded(client: AsyncClient, path: str) -> None:
    big = "x" * (get_settings().MAX_BODY_BYTES + 1)
    if path.endswith("login"):
        response = await client.post(path, data={"username": big, "password": "p"})
    else:
        response = await client.post(path, json={"email": big})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


async def test_a_body_just_under_the_limit_is_parsed_as_usual(client: AsyncClient) -> None:
    padding = "x" * (get_settings().MAX_BODY_BYTES - 100)
    response = await client.post(
        "/api/v1/auth/refresh",
        content=json.dumps({"refresh_token": "t", "z": padding}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422  # unknown field `z`: validated, not refused for size
    assert response.json()["error"] == "validation_error"
