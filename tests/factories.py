"""Small async factories that arrange test data the way a client would (through the API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from httpx import AsyncClient

DEFAULT_PASSWORD = "a-sturdy-passphrase-42"


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class SignedIn:
    """A registered user with a fresh token pair."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this user's access token."""
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(
    client: AsyncClient, *, email: str | None = None, password: str = DEFAULT_PASSWORD
) -> dict[str, str]:
    """Register a user through the API; return the response body."""
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email or unique_email(), "password": password, "full_name": "Test User"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def login(client: AsyncClient, *, email: str, password: str) -> dict[str, str]:
    """Sign in through the OAuth2 password form; return the token pair."""
    response = await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def signed_in_user(client: AsyncClient, *, password: str = DEFAULT_PASSWORD) -> SignedIn:
    """Register and sign in a new user."""
    user = await register(client, password=password)
    tokens = await login(client, email=user["email"], password=password)
    return SignedIn(
        id=user["id"],
        email=user["email"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def idempotency_headers(user: SignedIn, key: str | None = None) -> dict[str, str]:
    """The user's Authorization header plus a fresh (or given) Idempotency-Key."""
    return {**user.headers, "Idempotency-Key": key or str(uuid.uuid4())}


async def open_account(
    client: AsyncClient, user: SignedIn, *, currency: str = "EUR", name: str = "Main"
) -> dict[str, object]:
    """Open an account for the user through the API."""
    response = await client.post(
        "/api/v1/accounts", json={"currency": currency, "name": name}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def make_deposit(
    client: AsyncClient, user: SignedIn, amount: int, *, account_id: object | None = None
) -> tuple[str, str]:
    """Ask for a deposit (202, pending) into a new account of the user, or the one given.

    The account id and the deposit id. No worker runs in-process: it stays pending until a
    test completes it.
    """
    if account_id is None:
        account = await open_account(client, user, name=f"Deposits {uuid.uuid4().hex[:8]}")
        account_id = account["id"]
    response = await client.post(
        "/api/v1/deposits",
        json={"account_id": account_id, "amount": amount, "currency": "EUR"},
        headers=idempotency_headers(user),
    )
    assert response.status_code == 202, response.text
    return str(account_id), str(response.json()["id"])


async def adjust(
    client: AsyncClient, admin: SignedIn, account_id: object, amount: int, reason: str = "test"
) -> dict[str, object]:
    """Credit (or debit) an account through the admin adjustment endpoint."""
    response = await client.post(
        f"/api/v1/admin/accounts/{account_id}/adjustments",
        json={"amount": amount, "reason": reason},
        headers=idempotency_headers(admin),
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def payment_body(
    source: object, destination: object, amount: int, currency: str = "EUR"
) -> dict[str, object]:
    """The JSON of a payment request."""
    return {
        "source_account_id": str(source),
        "destination_account_id": str(destination),
        "amount": amount,
        "currency": currency,
        "description": "test payment",
    }
