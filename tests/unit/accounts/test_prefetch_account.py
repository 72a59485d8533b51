"""Which account entry the rate-limit round trip reads ahead, from the path alone."""

from __future__ import annotations

import uuid

import pytest

from app.accounts.dependencies import prefetch_account
from app.accounts.service import account_read_entry

ACCOUNT = uuid.UUID("3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de")


def scope(method: str, path: str) -> dict[str, str]:
    return {"type": "http", "method": method, "path": path}


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/accounts/{ACCOUNT}",
        f"/api/v1/accounts/{ACCOUNT}/summary",
        f"/api/v1/accounts/{str(ACCOUNT).upper()}",
        f"/api/v1/accounts/{ACCOUNT.hex}",
    ],
)
def test_a_read_of_one_account_names_its_entry(path: str) -> None:
    assert prefetch_account(scope("GET", path)) == [account_read_entry(ACCOUNT)]
    assert prefetch_account(scope("HEAD", path)) == [account_read_entry(ACCOUNT)]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/api/v1/accounts/{ACCOUNT}/summary"),
        ("GET", f"/api/v1/accounts/{ACCOUNT}/entries"),
        ("GET", "/api/v1/accounts"),
        ("GET", "/api/v1/accounts/not-a-uuid-but-long-enough-0000000000"),
        ("GET", f"/api/v1/accounts/{ACCOUNT}x"),
        ("GET", f"/api/v1/payments/{ACCOUNT}"),
    ],
)
def test_anything_else_names_nothing(method: str, path: str) -> None:
    assert prefetch_account(scope(method, path)) == []
