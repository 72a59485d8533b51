"""Password change: no connection held while hashing, no lost update, guesses limited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.config import get_settings
from app.core.security import PasswordHasher
from tests.factories import DEFAULT_PASSWORD, SignedIn, register, signed_in_user
from tests.integration.conftest import (
    QUIET_REDRIVE,
    clear_of_a_window_edge,
    http_client,
    started_app,
)

# Rate-limit counters start from zero in every test.

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"

real_verify = PasswordHasher.verify
real_hash = PasswordHasher.hash


@pytest.fixture
async def one_connection_app(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """An app whose pool has a single connection: whoever holds it blocks everyone else."""
    monkeypatch.setenv("DB_POOL_SIZE", "1")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("DB_POOL_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    async with started_app(**QUIET_REDRIVE) as application:
        yield application


async def test_a_password_change_holds_no_connection_while_it_hashes(
    one_connection_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8 row 3: wrong-password floods on this endpoint once starved every other request."""
    pool = one_connection_app.state.engine.pool
    held_while_hashing: list[int] = []
    hashing, release = asyncio.Event(), asyncio.Event()

    async def slow_verify(
        self: PasswordHasher, password: str, hashed: str
    ) -> tuple[bool, str | None]:
        held_while_hashing.append(pool.checkedout())
        hashing.set()
        await release.wait()  # a slow Argon2: the test decides when it ends
        return await real_verify(self, password, hashed)

    async def counting_hash(self: PasswordHasher, password: str) -> str:
        held_while_hashing.append(pool.checkedout())
        return await real_hash(self, password)

    async with http_client(one_connection_app) as http:
        changer, other = await signed_in_user(http), await signed_in_user(http)
        monkeypatch.setattr(PasswordHasher, "verify", slow_verify)
        monkeypatch.setattr(PasswordHasher, "hash", counting_hash)
        change = asyncio.create_task(
            http.post(
                PASSWORD,
                json={"current_password": changer.password, "new_password": "a-new-passphrase-7"},
                headers=changer.headers,
            )
        )
        await asyncio.wait_for(hashing.wait(), timeout=5)
        # The only connection must be free while the change is verifying the password.
        meanwhile = await http.get(ME, headers=other.headers)
        release.set()
        changed = await change
    assert meanwhile.status_code == 200, meanwhile.text
    assert changed.status_code == 204, changed.text
    assert held_while_hashing == [0, 0]  # the verify of the current one, the hash of the new one


async def test_two_concurrent_changes_with_the_same_current_password_cannot_both_win(
    live_http: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both verify the old hash before either writes: only the first write may replace it."""
    user = await signed_in_user(live_http)
    verifying: list[None] = []
    both_verifying = asyncio.Event()

    async def verify_together(
        self: PasswordHasher, password: str, hashed: str
    ) -> tuple[bool, str | None]:
        verifying.append(None)
        if len(verifying) == 2:
            both_verifying.set()
        await asyncio.wait_for(both_verifying.wait(), timeout=5)
        return await real_verify(self, password, hashed)

    monkeypatch.setattr(PasswordHasher, "verify", verify_together)
    candidates = ["first-new-passphrase-1", "second-new-passphrase-2"]
    responses = await asyncio.gather(
        *(
            live_http.post(
                PASSWORD,
                json={"current_password": user.password, "new_password": new},
                headers=user.headers,
            )
            for new in candidates
        )
    )
    assert sorted(r.status_code for r in responses) == [204, 422]
    (lost,) = [r.json() for r in responses if r.status_code == 422]
    assert [f["field"] for f in lost["fields"]] == ["body.current_password"]
    (winner,) = [new for new, r in zip(candidates, responses, strict=True) if r.status_code == 204]
    logins = {
        password: (
            await live_http.post(LOGIN, data={"username": user.email, "password": password})
        ).status_code
        for password in [user.password, *candidates]
    }
    assert logins == {user.password: 401, **{c: 200 if c == winner else 401 for c in candidates}}


# --- the current-password check is a password guess: limited like login ------------------


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.setenv("RATE_LIMIT_PASSWORD_CHECK", "3/minute")
    get_settings.cache_clear()


def change_from(
    http: AsyncClient, user: SignedIn, ip: str, current: str, new: str = "a-new-passphrase-7"
) -> Awaitable[Response]:
    return http.post(
        PASSWORD,
        json={"current_password": current, "new_password": new},
        headers={**user.headers, "X-Forwarded-For": ip},
    )


async def test_current_password_checks_are_limited_per_user_across_addresses(
    proxied: None,
) -> None:
    """Issue 8 row 3: 30 wrong guesses with one access token, then the 31st (right) was 204."""
    async with started_app() as application, http_client(application) as http:
        user = await signed_in_user(http)
        guesses = [
            (await change_from(http, user, f"203.0.113.{i}", "wrong-password-1")).status_code
            for i in range(3)
        ]
        right = await change_from(http, user, "203.0.113.9", user.password)
        other = await signed_in_user(http)  # another user's budget is their own
        theirs = await change_from(http, other, "203.0.113.9", other.password)
    assert guesses == [422, 422, 422]
    assert right.status_code == 429, right.text
    assert right.json()["error"] == "rate_limited"
    assert 1 <= int(right.headers["retry-after"]) <= 60
    assert theirs.status_code == 204


async def test_a_stolen_access_token_spends_the_accounts_guess_budget(
    proxied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No more guesses than login gives: the same budget, the same known-client exemption."""
    monkeypatch.setenv("RATE_LIMIT_PASSWORD_CHECK", "100/minute")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT", "3/hour")
    get_settings.cache_clear()
    home, thief = "198.51.100.7", "203.0.113.66"
    async with started_app() as application, http_client(application) as http:
        user = await register(http)
        tokens = (
            await http.post(
                LOGIN,
                data={"username": user["email"], "password": DEFAULT_PASSWORD},
                headers={"X-Forwarded-For": home},
            )
        ).json()  # spends one unit of 3; `home` is known from now on
        signed_in = SignedIn(
            id=user["id"],
            email=user["email"],
            password=DEFAULT_PASSWORD,
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )
        stolen = [
            (await change_from(http, signed_in, thief, f"guess-number-{i}")).status_code
            for i in range(3)
        ]
        new_client_login = await http.post(
            LOGIN,
            data={"username": user["email"], "password": DEFAULT_PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.1"},
        )
        at_home = await change_from(http, signed_in, home, DEFAULT_PASSWORD)
    assert stolen == [422, 422, 429]
    assert new_client_login.status_code == 429  # the thief spent the budget login uses too
    assert at_home.status_code == 204  # the real user, on a known client, is not locked out


async def test_current_password_checks_stay_limited_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PASSWORD_CHECK", "2/minute")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    await clear_of_a_window_edge(60)
    async with started_app() as application, http_client(application) as http:
        user = await signed_in_user(http)
        statuses = [
            (await change_from(http, user, "127.0.0.1", current)).status_code
            for current in ["wrong-password-1", "wrong-password-2", user.password]
        ]
    assert statuses == [422, 422, 429]
