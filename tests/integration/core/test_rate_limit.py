"""Rate limits: shared through Redis by every process, counted before auth, proxy-aware."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.core.config import get_settings
from tests.factories import DEFAULT_PASSWORD, register
from tests.integration.conftest import clear_of_a_window_edge, http_client, started_app
from tests.metrics import sample

# Rate-limit counters start from zero in every test.

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_DEFAULT", "5/minute")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_PER_IP", "4/minute")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_PER_ACCOUNT", "2/minute")
    get_settings.cache_clear()


@pytest.fixture
async def app(limits: None) -> AsyncIterator[FastAPI]:
    async with started_app() as application:
        yield application


async def test_the_default_limit_counts_anonymous_requests_and_answers_429(app: FastAPI) -> None:
    before = sample("ledger_rate_limited_total", limit="default")
    async with http_client(app) as http:
        responses = [await http.get(ME) for _ in range(6)]
    assert [r.status_code for r in responses] == [401] * 5 + [429]
    assert sample("ledger_rate_limited_total", limit="default") == before + 1
    assert {r.headers["x-ratelimit-limit"] for r in responses[:5]} == {"5"}
    limited = responses[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["error"] == "rate_limited"
    assert limited.json()["request_id"] == limited.headers["x-request-id"]
    assert limited.headers["x-ratelimit-limit"] == "5"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 0 <= int(limited.headers["x-ratelimit-reset"]) <= 60
    assert 1 <= int(limited.headers["retry-after"]) <= 60


async def test_probes_are_not_limited(app: FastAPI) -> None:
    async with http_client(app) as http:
        statuses = {(await http.get("/health/live")).status_code for _ in range(10)}
    assert statuses == {200}


async def test_two_processes_share_one_budget(limits: None) -> None:
    async with (
        started_app() as first,
        started_app() as second,
        http_client(first) as a,
        http_client(second) as b,
    ):
        statuses = [(await (a if i % 2 else b).get(ME)).status_code for i in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(app: FastAPI) -> None:
    async with http_client(app) as http:
        statuses = [
            (await http.get(ME, headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(6)
        ]
    assert statuses[-1] == 429  # all six counted against the real peer, 127.0.0.1


async def test_forwarded_for_from_a_trusted_proxy_separates_clients(
    limits: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")
    get_settings.cache_clear()
    async with started_app() as application, http_client(application) as http:
        statuses = [
            (await http.get(ME, headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(8)
        ]
        same_client = [
            (await http.get(ME, headers={"X-Forwarded-For": "198.51.100.7"})).status_code
            for _ in range(6)
        ]
    assert statuses == [401] * 8
    assert same_client == [401] * 5 + [429]


@pytest.fixture
async def login_app(limits: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    """The login limits alone: with the default limit at 5 a minute, the 6th request of a test
    is refused by it, whatever the login limits say."""
    monkeypatch.setenv("RATE_LIMIT_DEFAULT", "100/minute")
    get_settings.cache_clear()
    async with started_app() as application:
        yield application


async def test_login_is_limited_per_account_then_per_ip(login_app: FastAPI) -> None:
    before = {
        name: sample("ledger_rate_limited_total", limit=name)
        for name in ("login-account", "login-ip")
    }
    async with http_client(login_app) as http:
        user = await register(http)
        wrong = {"username": user["email"], "password": "wrong-password-1"}
        per_account = [(await http.post(LOGIN, data=wrong)).status_code for _ in range(3)]
        other = {"username": "someone-else@example.com", "password": "wrong-password-1"}
        per_ip = [(await http.post(LOGIN, data=other)).status_code for _ in range(2)]
    assert per_account == [401, 401, 429]
    assert per_ip == [401, 429]  # 4 logins per IP per minute, whatever the account
    # Counted by the limit's name, never by the account or the address.
    assert {
        name: sample("ledger_rate_limited_total", limit=name) - before[name] for name in before
    } == {"login-account": 1, "login-ip": 1}


async def test_when_redis_is_down_routes_fail_open_but_login_stays_limited(
    limits: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    await clear_of_a_window_edge(60)
    async with started_app() as application, http_client(application) as http:
        routes = [(await http.get(ME)).status_code for _ in range(7)]
        logins = [
            (
                await http.post(
                    LOGIN, data={"username": "x@example.com", "password": DEFAULT_PASSWORD}
                )
            ).status_code
            for _ in range(4)
        ]
    assert routes == [401] * 7  # not counted: fail open, never a 500
    assert logins == [401, 401, 429, 429]  # the per-process fallback still refuses
