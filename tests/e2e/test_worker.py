"""The worker as a real process: deposits made while no worker runs complete when one starts.

The API commits the deposit with its task in the outbox and never talks to the broker; the
worker relays the outbox to the Redis stream and runs the task. SIGTERM stops it with exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import IO

import httpx
import pytest

from app.cli import worker_command
from app.core.config import get_settings
from tests.e2e.conftest import ROOT, Server, free_port, start_server, uvicorn_command
from tests.factories import DEFAULT_PASSWORD, unique_email

WORKER_ENV = {"PSP_FAKE_LATENCY_MS": "50", "OUTBOX_POLL_SECONDS": "0.2"}


@pytest.fixture
def queue() -> str:
    """A stream of this test's own, so no other test's tasks are in it."""
    return f"ledger:test-tasks:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(migrated_database: str, queue: str) -> Iterator[Server]:
    port = free_port()
    server = start_server(uvicorn_command(port), port, env={"TASK_QUEUE": queue})
    yield server
    server.stop()


def _signed_in(client: httpx.Client) -> dict[str, str]:
    email = unique_email("worker")
    client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "Worker Test"},
    ).raise_for_status()
    tokens = client.post(
        "/api/v1/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
    ).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _deposit(client: httpx.Client, auth: dict[str, str], account_id: str, amount: int) -> str:
    response = client.post(
        "/api/v1/deposits",
        json={"account_id": account_id, "amount": amount, "currency": "EUR"},
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text
    deposit_id: str = response.json()["id"]
    return deposit_id


def test_deposits_made_while_no_worker_runs_complete_when_one_starts(
    api: Server, queue: str
) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth = _signed_in(client)
        account = client.post(
            "/api/v1/accounts", json={"currency": "EUR", "name": "Main"}, headers=auth
        ).json()
        paid_in = _deposit(client, auth, account["id"], 5000)
        declined = _deposit(client, auth, account["id"], 1013)
        flaky = _deposit(client, auth, account["id"], 4242)
        time.sleep(1)
        assert client.get(f"/api/v1/deposits/{paid_in}", headers=auth).json()["status"] == "pending"

        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(  # noqa: S603 - the command make run uses
            worker_command(get_settings()),
            cwd=ROOT,
            env={**os.environ, **WORKER_ENV, "TASK_QUEUE": queue},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            statuses: dict[str, str] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                statuses = {
                    deposit: client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()[
                        "status"
                    ]
                    for deposit in (paid_in, declined, flaky)
                }
                if "pending" not in statuses.values():
                    break
                time.sleep(0.25)
            log.seek(0)
            assert statuses == {paid_in: "succeeded", declined: "failed", flaky: "succeeded"}, (
                log.read()[-5000:]
            )
            failed = client.get(f"/api/v1/deposits/{declined}", headers=auth).json()
            assert failed["failure_code"] == "card_declined"
            balance = client.get(f"/api/v1/accounts/{account['id']}", headers=auth).json()
            assert balance["balance"] == 5000 + 4242  # each credited once
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                code = worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                raise
            log.seek(0)
            output = log.read()
            log.close()
        assert code == 0, output[-5000:]


def test_a_stopping_worker_finishes_the_task_it_is_running(api: Server, queue: str) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth = _signed_in(client)
        account = client.post(
            "/api/v1/accounts", json={"currency": "EUR", "name": "Main"}, headers=auth
        ).json()
        deposit = _deposit(client, auth, account["id"], 3000)
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(  # noqa: S603 - the command make run uses
            worker_command(get_settings()),
            cwd=ROOT,
            # A slow card: the charge is still running when SIGTERM arrives.
            env={**os.environ, **WORKER_ENV, "PSP_FAKE_LATENCY_MS": "3000", "TASK_QUEUE": queue},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                log.seek(0)
                if "deposit_charging" in log.read():
                    break
                assert time.monotonic() < deadline, output_so_far(log)
                assert worker.poll() is None, output_so_far(log)
                time.sleep(0.1)
            # The card is being charged (3 s): stop the worker now.
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
            log.seek(0)
            output = log.read()
            log.close()
        assert code == 0, output[-5000:]
        finished = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()
        assert finished["status"] == "succeeded", output[-5000:]
        balance = client.get(f"/api/v1/accounts/{account['id']}", headers=auth).json()
        assert balance["balance"] == 3000


def output_so_far(log: IO[str]) -> str:
    log.seek(0)
    return log.read()[-5000:]
