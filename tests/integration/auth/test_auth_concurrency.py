"""Rotation under real concurrency: real commits on a real pool, not the rolled-back session."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient

from app.auth.dependencies import AdminUser
from app.core.config import get_settings
from app.core.security import PasswordHasher
from tests.factories import signed_in_user
from tests.integration.conftest import http_client, settings_changed, started_app

LOGIN = "/api/v1/auth/login"
PASSWORD = "/api/v1/users/me/password"
REFRESH = "/api/v1/auth/refresh"

admin_probe = APIRouter(prefix="/probe")


@admin_probe.get("/admin-only")
async def admin_only(admin: AdminUser) -> dict[str, str]:
    return {"admin": str(admin.id)}


@pytest.fixture(scope="module")
async def committing_app(migrated_database: str) -> AsyncIterator[FastAPI]:
    async with started_app(admin_probe) as app:
        yield app


@pytest.fixture
async def http(committing_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with http_client(committing_app) as client:
        yield client


async def test_concurrent_refreshes_of_one_token_yield_exactly_one_new_pair(
    http: AsyncClient,
) -> None:
    user = await signed_in_user(http)
    responses = await asyncio.gather(
        *(http.post(REFRESH, json={"refresh_token": user.refresh_token}) for _ in range(8))
    )
    outcomes = Counter(r.status_code for r in responses)
    assert outcomes == {200: 1, 401: 7}
    assert {r.json()["error"] for r in responses if r.status_code == 401} == {"invalid_token"}
    # Inside the grace window the family survives: the winner's token still rotates.
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    follow_up = await http.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
    assert follow_up.status_code == 200


async def test_concurrent_replays_after_the_grace_window_revoke_everything(
    committing_app: FastAPI, http: AsyncClient
) -> None:
    with settings_changed(committing_app, REFRESH_REUSE_GRACE_SECONDS=0):
        user = await signed_in_user(http)
        newest = (await http.post(REFRESH, json={"refresh_token": user.refresh_token})).json()
        replays = await asyncio.gather(
            *(http.post(REFRESH, json={"refresh_token": user.refresh_token}) for _ in range(5))
        )
        # The first replay to get the row lock revokes the family; the rest then find it revoked.
        assert Counter(r.json()["error"] for r in replays) == {
            "refresh_token_reused": 1,
            "invalid_token": 4,
        }
        after = await http.post(REFRESH, json={"refresh_token": newest["refresh_token"]})
        assert after.json()["error"] == "invalid_token"


async def test_admin_only_routes_answer_403_to_users_and_serve_admins(
    http: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await signed_in_user(http)
    response = await http.get("/probe/admin-only", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"

    from app import cli

    monkeypatch.setenv("FIRST_ADMIN_EMAIL", user.email)
    get_settings.cache_clear()
    # The seed promotes an existing account to admin.
    assert f"admin {user.email} already exists" in await cli.seed(get_settings())
    promoted = await http.get("/probe/admin-only", headers=user.headers)
    assert promoted.status_code == 200
    assert promoted.json() == {"admin": user.id}


async def test_a_login_that_verified_the_old_password_loses_to_a_change_made_meanwhile(
    http: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Login hashes outside any transaction (ADR 0013); its write re-checks the hash it verified."""
    user = await signed_in_user(http)
    real_verify = PasswordHasher.verify
    calls: list[None] = []
    verifying, release = asyncio.Event(), asyncio.Event()

    async def first_call_waits(
        self: PasswordHasher, password: str, hashed: str
    ) -> tuple[bool, str | None]:
        calls.append(None)
        if len(calls) == 1:  # the login's verify; the password change's own runs freely
            verifying.set()
            await release.wait()
        return await real_verify(self, password, hashed)

    monkeypatch.setattr(PasswordHasher, "verify", first_call_waits)
    login = asyncio.create_task(
        http.post(LOGIN, data={"username": user.email, "password": user.password})
    )
    await asyncio.wait_for(verifying.wait(), timeout=5)
    changed = await http.post(
        PASSWORD,
        json={"current_password": user.password, "new_password": "a-brand-new-passphrase"},
        headers=user.headers,
    )
    release.set()
    assert changed.status_code == 204, changed.text
    late = await login
    assert late.status_code == 401, late.text
    assert late.json()["error"] == "invalid_credentials"
