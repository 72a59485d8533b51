"""One user's whole life with the service, against a real API process and a real worker.

Register, sign in, open two accounts, top one up by card (the worker charges it and sends the
receipt), pay from it to the other, read the statement, refresh the session, sign out — and
after signing out the refresh token no longer works. Every step through HTTP as a client
would take it, as the image runs the API (`python -m app.server`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Server, free_port, start_app_server
from tests.e2e.test_worker import Worker
from tests.factories import DEFAULT_PASSWORD, unique_email


@pytest.fixture
def api(migrated_database: str) -> Iterator[tuple[Server, str]]:
    queue = f"ledger:test-tasks:{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = start_app_server(port, {"TASK_QUEUE": queue})
    yield server, queue
    server.stop()


def test_register_deposit_pay_read_the_statement_and_sign_out(api: tuple[Server, str]) -> None:
    server, queue = api
    email = unique_email("whole")
    worker = Worker(queue)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            registered = client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "Whole User"},
            )
            assert registered.status_code == 201, registered.text
            tokens = client.post(
                "/api/v1/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
            ).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            main, savings = (
                client.post(
                    "/api/v1/accounts", json={"currency": "EUR", "name": name}, headers=auth
                ).json()["id"]
                for name in ("Main", "Savings")
            )

            deposit = client.post(
                "/api/v1/deposits",
                json={"account_id": main, "amount": 5000, "currency": "EUR"},
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert deposit.status_code == 202, deposit.text
            deadline = time.monotonic() + 60
            while (
                status := client.get(
                    f"/api/v1/deposits/{deposit.json()['id']}", headers=auth
                ).json()["status"]
            ) == "pending":
                assert time.monotonic() < deadline, worker.read()[-3000:]
                time.sleep(0.1)
            assert status == "succeeded"
            worker.wait_for_receipt(deposit.json()["id"])

            paid = client.post(
                "/api/v1/payments",
                json={
                    "source_account_id": main,
                    "destination_account_id": savings,
                    "amount": 1250,
                    "currency": "EUR",
                    "description": "to savings",
                },
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert paid.status_code == 201, paid.text
            assert paid.json()["status"] == "succeeded"

            balances = {
                account: client.get(f"/api/v1/accounts/{account}", headers=auth).json()["balance"]
                for account in (main, savings)
            }
            assert balances == {main: 5000 - 1250, savings: 1250}
            statement = client.get(f"/api/v1/accounts/{main}/entries", headers=auth).json()
            assert sorted(entry["amount"] for entry in statement["items"]) == [-1250, 5000]
            assert statement["next_cursor"] is None
            listed = client.get("/api/v1/payments", headers=auth).json()["items"]
            assert [p["id"] for p in listed] == [paid.json()["id"]]

            refreshed = client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert refreshed.status_code == 200, refreshed.text
            latest = refreshed.json()["refresh_token"]
            out = client.post("/api/v1/auth/logout", json={"refresh_token": latest})
            assert out.status_code == 204
            after = client.post("/api/v1/auth/refresh", json={"refresh_token": latest})
            assert after.status_code == 401
    finally:
        code = worker.stop()
    assert code == 0, worker.output[-3000:]
