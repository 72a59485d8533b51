"""Text the database cannot store (NUL) is a 422 naming the field on every endpoint, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from app.core.openapi import build_openapi
from app.core.types import TEXT_PATTERN
from app.main import API_PREFIX
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
    for bad in (f"x{NUL}y", "", "x" * 201):  # an optional field: only the string's reason
        response = await client.patch(
            "/api/v1/users/me", json={"full_name": bad}, headers=user.headers
        )
        assert_names_field(response, "body.full_name")
        assert [item["field"] for item in response.json()["fields"]] == ["body.full_name"]

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


def _request_body_schemas(app: FastAPI) -> list[tuple[str, dict[str, Any]]]:
    """Every object schema a request body can contain: by `$ref` or inlined, nested ones too."""
    document = build_openapi(app, api_prefix=API_PREFIX)
    components = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return components[ref.rsplit("/", 1)[-1]] if ref else schema

    def objects(label: str, schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        schema = resolve(schema)
        found = [(label, schema)] if "properties" in schema else []
        for name, prop in schema.get("properties", {}).items():
            for option in prop.get("anyOf", [prop]):
                found += objects(f"{label}.{name}", option)
        return found

    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                found += objects(f"{method.upper()} {path}", media["schema"])
    return found


def _string_alternatives(prop: dict[str, Any]) -> list[dict[str, Any]]:
    options = prop.get("anyOf", [prop])
    return [{**prop, **option} for option in options if option.get("type") == "string"]


# Strings whose format or pattern already excludes NUL need no Text type.
_SAFE_FORMATS = {"uuid", "email", "date-time"}
_SAFE_PATTERNS = {TEXT_PATTERN, "^[A-Z]{3}$", "^(password)?$"}


def test_every_text_field_of_every_request_body_refuses_nul(app: FastAPI) -> None:
    """Structural guard: a new free-text field without the shared Text type fails here."""
    unguarded = [
        f"{operation} {name}"
        for operation, schema in _request_body_schemas(app)
        for name, prop in schema.get("properties", {}).items()
        for option in _string_alternatives(prop)
        if option.get("format") not in _SAFE_FORMATS
        and "enum" not in option
        and "const" not in option
        and option.get("pattern") not in _SAFE_PATTERNS
    ]
    assert unguarded == []
