"""The auth endpoints' own rate limits: registration, login budgets, current-password checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.config import get_settings
from tests.factories import DEFAULT_PASSWORD, register, unique_email
from tests.integration.conftest import clear_of_a_window_edge, http_client, started_app

# Rate-limit counters start from zero in every test.

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def registration() -> dict[str, str]:
    return {"email": unique_email(), "password": "a-sturdy-passphrase-42", "full_name": "T"}


async def test_registration_stays_limited_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each registration costs an Argon2 hash: a Redis outage must not lift the limit."""
    monkeypatch.setenv("RATE_LIMIT_REGISTER", "5/minute")
    monkeypatch.setenv("REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()
    await clear_of_a_window_edge(60)
    async with started_app() as application, http_client(application) as http:
        statuses = [(await http.post(REGISTER, json=registration())).status_code for _ in range(8)]
    assert statuses == [201] * 5 + [429] * 3


# --- one budget of guesses per account, across every client ---------------------------


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients told apart by X-Forwarded-For (from a trusted proxy); 3 guesses per account."""
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT", "3/hour")
    get_settings.cache_clear()


@pytest.fixture
async def proxied_app(proxied: None) -> AsyncIterator[FastAPI]:
    async with started_app() as application:
        yield application


async def sign_in(http: AsyncClient, ip: str, email: str, password: str) -> Response:
    return await http.post(
        LOGIN, data={"username": email, "password": password}, headers={"X-Forwarded-For": ip}
    )


async def test_many_clients_share_one_budget_of_guesses_per_account(proxied_app: FastAPI) -> None:
    """Issue 8 row 16: N addresses used to get 5 x N guesses a minute at one account."""
    async with http_client(proxied_app) as http:
        user = await register(http)
        guesses = [
            (await sign_in(http, f"203.0.113.{i}", user["email"], "wrong-password-1")).status_code
            for i in range(4)
        ]
        right = await sign_in(http, "198.51.100.9", user["email"], DEFAULT_PASSWORD)
    assert guesses == [401, 401, 401, 429]
    assert right.status_code == 429  # a new client is refused, even with the right password
    assert right.json()["error"] == "rate_limited"
    assert 1 <= int(right.headers["retry-after"]) <= 3600
    assert "device you have signed in with before" in right.json()["detail"]


async def test_unknown_emails_have_a_budget_too(proxied_app: FastAPI) -> None:
    """Otherwise the first 429 would tell an attacker that the account exists."""
    async with http_client(proxied_app) as http:
        email = unique_email("ghost")
        statuses = [
            (await sign_in(http, f"203.0.113.{i}", email, "wrong-password-1")).status_code
            for i in range(4)
        ]
    assert statuses == [401, 401, 401, 429]


async def test_a_client_that_signed_in_before_is_not_locked_out(proxied_app: FastAPI) -> None:
    async with http_client(proxied_app) as http:
        user = await register(http)
        home = "198.51.100.7"
        assert (await sign_in(http, home, user["email"], DEFAULT_PASSWORD)).status_code == 200
        attack = [
            (await sign_in(http, f"203.0.113.{i}", user["email"], "wrong-password-1")).status_code
            for i in range(5)
        ]
        back_home = await sign_in(http, home, user["email"], DEFAULT_PASSWORD)
        typo_at_home = await sign_in(http, home, user["email"], "wrong-password-1")
    # The home client's first sign-in spent one unit of the budget; then it was known.
    assert attack == [401, 401, 429, 429, 429]
    assert back_home.status_code == 200
    assert typo_at_home.status_code == 401  # its own per-IP limits still apply, not the budget


async def test_a_known_clients_sign_ins_do_not_spend_the_budget(proxied_app: FastAPI) -> None:
    async with http_client(proxied_app) as http:
        user = await register(http)
        home = "198.51.100.7"
        signed_in = [
            (await sign_in(http, home, user["email"], DEFAULT_PASSWORD)).status_code
            for _ in range(6)
        ]
        strangers = [
            (await sign_in(http, f"203.0.113.{i}", user["email"], "wrong-password-1")).status_code
            for i in range(3)
        ]
    assert signed_in == [200] * 6
    assert strangers == [401, 401, 429]  # 3 - the one spent by home's first sign-in


async def test_the_budget_holds_while_redis_is_down(
    proxied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never fail open on login: a per-process budget, and this process's known clients."""
    monkeypatch.setenv("REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()
    await clear_of_a_window_edge(3600)  # the per-account budget is 3 an hour
    async with started_app() as application, http_client(application) as http:
        user = await register(http)
        home = "198.51.100.7"
        assert (await sign_in(http, home, user["email"], DEFAULT_PASSWORD)).status_code == 200
        attack = [
            (await sign_in(http, f"203.0.113.{i}", user["email"], "wrong-password-1")).status_code
            for i in range(3)
        ]
        back_home = await sign_in(http, home, user["email"], DEFAULT_PASSWORD)
    assert attack == [401, 401, 429]
    assert back_home.status_code == 200
