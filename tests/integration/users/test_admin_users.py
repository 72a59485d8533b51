"""Back-office user administration: deactivation takes effect at once, everywhere."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from tests.assertions import problem
from tests.factories import SignedIn, signed_in_user

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def url(user_id: object) -> str:
    return f"/api/v1/admin/users/{user_id}"


async def test_deactivation_ends_every_session_at_once(
    client: AsyncClient, admin: SignedIn
) -> None:
    """Issue 8 row 5: a cached principal kept old access tokens working for up to 300 s."""
    user = await signed_in_user(client)
    assert (await client.get(ME, headers=user.headers)).status_code == 200  # principal cached
    response = await client.patch(url(user.id), json={"is_active": False}, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "created_at",
        "updated_at",
    }
    assert (body["id"], body["email"], body["role"], body["is_active"]) == (
        user.id,
        user.email,
        "user",
        False,
    )
    problem(await client.get(ME, headers=user.headers), 401, "invalid_token")
    problem(
        await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401, "invalid_token"
    )
    problem(
        await client.post(LOGIN, data={"username": user.email, "password": user.password}),
        401,
        "invalid_credentials",
    )


async def test_reactivation_lets_the_user_sign_in_again_but_revives_no_old_session(
    client: AsyncClient, admin: SignedIn
) -> None:
    user = await signed_in_user(client)
    await client.patch(url(user.id), json={"is_active": False}, headers=admin.headers)
    response = await client.patch(url(user.id), json={"is_active": True}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True
    fresh = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert fresh.status_code == 200, fresh.text
    headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get(ME, headers=headers)).status_code == 200
    # Whatever was issued before the deactivation stays dead: reactivating is not un-revoking.
    problem(await client.get(ME, headers=user.headers), 401, "invalid_token")
    problem(
        await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401, "invalid_token"
    )


async def test_setting_the_flag_it_already_has_changes_nothing(
    client: AsyncClient, admin: SignedIn
) -> None:
    user = await signed_in_user(client)
    response = await client.patch(url(user.id), json={"is_active": True}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert (await client.get(ME, headers=user.headers)).status_code == 200
    assert (
        await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    ).status_code == 200


async def test_only_admins_may_change_users(client: AsyncClient) -> None:
    user, other = await signed_in_user(client), await signed_in_user(client)
    problem(
        await client.patch(url(other.id), json={"is_active": False}, headers=user.headers),
        403,
        "forbidden",
    )
    problem(await client.patch(url(other.id), json={"is_active": False}), 401, "not_authenticated")
    assert (await client.get(ME, headers=other.headers)).status_code == 200


async def test_an_admin_cannot_deactivate_themselves(client: AsyncClient, admin: SignedIn) -> None:
    """It would leave the back office without its admin, by a slip of one click."""
    body = problem(
        await client.patch(url(admin.id), json={"is_active": False}, headers=admin.headers),
        422,
        "validation_error",
    )
    assert [f["field"] for f in body["fields"]] == ["body.is_active"]  # type: ignore[attr-defined]
    assert (await client.get(ME, headers=admin.headers)).status_code == 200


async def test_an_unknown_user_is_not_found(client: AsyncClient, admin: SignedIn) -> None:
    problem(
        await client.patch(url(uuid.uuid4()), json={"is_active": False}, headers=admin.headers),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    "body", [{}, {"is_active": "no"}, {"is_active": None}, {"is_active": False, "role": "admin"}]
)
async def test_malformed_changes_are_refused(
    client: AsyncClient, admin: SignedIn, body: dict[str, object]
) -> None:
    user = await signed_in_user(client)
    problem(
        await client.patch(url(user.id), json=body, headers=admin.headers), 422, "validation_error"
    )
    assert (await client.get(ME, headers=user.headers)).status_code == 200
