"""Two commands on a fresh laptop: `make run` reaches a first payment with no PostgreSQL or Redis.

The machine is simulated by a network namespace of its own (`ip netns add`, loopback up): nothing
listens on 5432 or 6379 there, so `python -m app.cli run` (what `make run` runs) must start the
embedded servers, say so, create, migrate, seed and serve. A client inside the same namespace
signs in as the demo user and pays; Ctrl-C then stops everything, the embedded servers too.
Needs root for `ip netns` — the CI machines and these sandboxes run as root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, read_log

STARTUP_SECONDS = 120.0
CLIENT = """
import sys, uuid, httpx
with httpx.Client(base_url="http://127.0.0.1:8000", timeout=30) as client:
    tokens = client.post(
        "/api/v1/auth/login",
        data={"username": "demo@example.com", "password": "demo-password-2026"},
    ).json()
    auth = {"Authorization": "Bearer " + tokens["access_token"]}
    demo = client.get("/api/v1/accounts", headers=auth).json()["items"][0]
    savings = client.post(
        "/api/v1/accounts", json={"currency": "EUR", "name": "Savings"}, headers=auth
    ).json()
    paid = client.post(
        "/api/v1/payments",
        json={"source_account_id": demo["id"], "destination_account_id": savings["id"],
              "amount": 1250, "currency": "EUR"},
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    print(paid.status_code, paid.text)
    sys.exit(0 if paid.status_code == 201 else 1)
"""


@pytest.fixture
def empty_machine() -> Iterator[list[str]]:
    """`ip netns exec <ns>`: a host of its own where only loopback is up and nothing listens."""
    assert os.geteuid() == 0, "this test needs root for `ip netns` (CI runs as root)"
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)  # noqa: S603, S607
    try:
        enter = ["ip", "netns", "exec", name]
        subprocess.run([*enter, "ip", "link", "set", "lo", "up"], check=True)  # noqa: S603
        yield enter
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)  # noqa: S603, S607


def test_make_run_reaches_a_first_payment_where_no_postgres_or_redis_runs(
    empty_machine: list[str], tmp_path: Path
) -> None:
    # A newcomer's environment: nothing configured, so every URL is the .env.example default.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        ENVIRONMENT="development",
        LOG_FORMAT="json",
        PORT="8000",
        LOCAL_DATA_DIR=str(tmp_path / "local"),
    )
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
    supervisor = subprocess.Popen(  # noqa: S603 - a fixed command
        [*empty_machine, sys.executable, "-m", "app.cli", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def output() -> str:
        return read_log(log)

    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "fastapi-ledger is up" not in output():
            assert supervisor.poll() is None, output()
            assert time.monotonic() < deadline, output()
            time.sleep(0.2)
        started = output()
        assert (
            "PostgreSQL not answering at 127.0.0.1:5432: started an embedded PostgreSQL" in started
        )
        assert "Redis not answering at 127.0.0.1:6379: started" in started
        assert "database created" in started

        client = subprocess.run(  # noqa: S603 - a fixed command
            [*empty_machine, sys.executable, "-c", CLIENT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stdout + client.stderr + output()
        assert client.stdout.startswith("201 "), client.stdout

        # The worker and the scheduler run beside the API: its first tick sends the sweeper.
        while "Sending task deposits.sweep" not in output() or "worker_started" not in output():
            assert supervisor.poll() is None, output()
            assert time.monotonic() < deadline + 30, output()
            time.sleep(0.2)

        supervisor.send_signal(signal.SIGINT)  # Ctrl-C
        assert supervisor.wait(timeout=60) == 0, output()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        final = output()
        log.close()
    assert "shutdown_complete" in final  # each of the three stopped cleanly
    assert "worker_stopped" in final
    assert "Scheduler shut down" in final
    # Ctrl-C stopped the embedded servers too: the data stays, the processes do not.
    data = tmp_path / "local"
    assert (data / "postgres" / "PG_VERSION").exists()
    assert not (data / "postgres" / "postmaster.pid").exists(), final
    assert (data / "redis" / "appendonlydir").exists() or any((data / "redis").glob("*.aof*"))


def test_the_test_suite_starts_its_own_servers_where_none_answer(empty_machine: list[str]) -> None:
    """`make test` on the same fresh laptop: a slice of the integration suite, run for real."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "ENVIRONMENT"} and not k.startswith("PYTEST_")
    }
    result = subprocess.run(  # noqa: S603 - a fixed command
        [
            *empty_machine,
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-cov",
            "tests/integration/health/test_health.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "started an embedded PostgreSQL" in result.stdout
    assert "Redis not answering at 127.0.0.1:6379: started" in result.stdout
    assert " passed" in result.stdout
