"""Text the database cannot store (NUL) is a 422 naming the field on every endpoint, never a 500."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.factories import (
    SignedIn,
    idempotency_headers,
    open_account,
    payment_body,
    signed_in_user,
    unique_email,
)

NUL = "\u0000"


def assert_names_field(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in [item["field"] for item in body["fields"]], body


async def test_nul_in_registration_full_name_and_password(client: AsyncClient) -> None:
    for field, value in (("full_name", f"Ann{NUL}"), ("password", f"a-sturdy-pass{NUL}phrase")):
        data = {"email": unique_email(), "password": "a-sturdy-passphrase-42", "full_name": "A"}
        data[field] = value
        response = await client.post("/api/v1/auth/register", json=data)
        assert_names_field(response, f"body.{field}")


async def test_nul_in_profile_account_name_payment_and_password_change(
    client: AsyncClient,
) -> None:
    user = await signed_in_user(client)
    response = await client.patch(
        "/api/v1/users/me", json={"full_name": f"x{NUL}y"}, headers=user.headers
    )
    assert_names_field(response, "body.full_name")

    response = await client.post(
        "/api/v1/accounts", json={"currency": "EUR", "name": f"Main{NUL}"}, headers=user.headers
    )
    assert_names_field(response, "body.name")

    source = await open_account(client, user)
    target = await open_account(client, user, name="Savings")
    body = payment_body(source["id"], target["id"], 100)
    body["description"] = f"rent{NUL}"
    response = await client.post("/api/v1/payments", json=body, headers=idempotency_headers(user))
    assert_names_field(response, "body.description")

    response = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": f"x{NUL}", "new_password": "another-sturdy-phrase-7"},
        headers=user.headers,
    )
    assert_names_field(response, "body.current_password")


async def test_nul_in_refresh_token(client: AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": f"abc{NUL}"})
    assert_names_field(response, "body.refresh_token")


async def test_nul_in_adjustment_reason(client: AsyncClient, admin: SignedIn) -> None:
    user = await signed_in_user(client)
    account = await open_account(client, user)
    response = await client.post(
        f"/api/v1/admin/accounts/{account['id']}/adjustments",
        json={"amount": 100, "reason": f"goodwill{NUL}"},
        headers=idempotency_headers(admin),
    )
    assert_names_field(response, "body.reason")
