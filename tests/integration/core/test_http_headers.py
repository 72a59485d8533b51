"""Security headers on every answer, HEAD for every GET, readable CORS, no Host-built redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter
from httpx import AsyncClient

from app.core.http_headers import API_CSP, DOCS_CSP
from tests.factories import open_account, signed_in_user
from tests.integration.conftest import http_client, started_app

ORIGIN = "https://wallet.example"
probe = APIRouter(prefix="/probe")


@probe.get("/crash")
async def crash() -> None:
    raise RuntimeError("boom")


def assert_security_headers(response: object, csp: str = API_CSP) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == csp


@asynccontextmanager
async def app_client(monkeypatch: pytest.MonkeyPatch, **env: str) -> AsyncIterator[AsyncClient]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with started_app(probe) as app, http_client(app) as client:
        yield client


async def test_every_kind_of_answer_carries_the_security_headers(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    answers = [
        await client.get(f"/api/v1/accounts/{account['id']}", headers=user.headers),  # 200
        await client.get("/api/v1/nothing-here"),  # 404
        await client.post("/api/v1/accounts", json={}, headers=user.headers),  # 422
        await client.delete("/api/v1/accounts"),  # 405
        await client.get("/health/live"),
        await client.get("/openapi.json"),
    ]
    for response in answers:
        assert_security_headers(response)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert_security_headers(docs, DOCS_CSP)
    assert "frame-ancestors 'none'" in DOCS_CSP


async def test_every_api_answer_is_no_store(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    for response in (
        await client.get("/api/v1/users/me", headers=user.headers),
        await client.get("/api/v1/accounts", headers=user.headers),
        await client.get("/api/v1/users/me"),  # 401
    ):
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.usefixtures("migrated_database")
async def test_the_last_resort_500_carries_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch) as client:
        response = await client.get("/probe/crash")
    assert response.status_code == 500
    assert_security_headers(response)


@pytest.mark.usefixtures("migrated_database")
async def test_hsts_only_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch, TRUSTED_PROXIES="127.0.0.1") as client:
        plain = await client.get("/health/live")
        behind_tls = await client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in plain.headers
    assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


async def test_head_is_answered_wherever_get_is(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    for path, headers in (
        ("/health/live", {}),
        (f"/api/v1/accounts/{account['id']}", user.headers),
    ):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.status_code == got.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-type"] == got.headers["content-type"]
    missing = await client.head("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.content == b""


async def test_a_head_on_a_post_only_path_is_405_with_a_true_allow(client: AsyncClient) -> None:
    refused = await client.head("/api/v1/auth/login")
    assert refused.status_code == 405
    assert "HEAD" not in refused.headers["allow"]


@pytest.mark.usefixtures("migrated_database")
async def test_a_refused_preflight_is_a_problem_document(monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch, CORS_ORIGINS=ORIGIN) as client:
        refused = await client.options(
            "/api/v1/accounts",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        allowed = await client.options(
            "/api/v1/accounts",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["error"] == "cors_preflight_refused"
    assert "origin" in body["detail"]
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.usefixtures("migrated_database")
async def test_a_browser_can_read_a_429_and_its_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with app_client(
        monkeypatch, CORS_ORIGINS=ORIGIN, RATE_LIMIT_DEFAULT="2/minute"
    ) as client:
        answers = [
            await client.get("/api/v1/users/me", headers={"Origin": ORIGIN}) for _ in range(4)
        ]
        too_big = await client.post(
            "/api/v1/auth/refresh",
            content=b"{" * 70_000,
            headers={"Origin": ORIGIN, "content-type": "application/json"},
        )
    limited = answers[-1]
    assert limited.status_code == 429
    assert limited.headers["access-control-allow-origin"] == ORIGIN
    exposed = limited.headers["access-control-expose-headers"]
    assert "Retry-After" in exposed
    assert "X-RateLimit-Remaining" in exposed
    assert too_big.headers["access-control-allow-origin"] == ORIGIN


async def test_no_redirect_is_built_from_the_host_header(client: AsyncClient) -> None:
    response = await client.get("/api/v1/accounts/", headers={"Host": "evil.example.com"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"] == "not_found"
