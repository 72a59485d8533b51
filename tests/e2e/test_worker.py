"""The worker as a real process: what SPEC §6 promises about delivery, with real failures.

The API commits the deposit with its task in the outbox and never talks to the broker; the
worker relays the outbox to the Redis stream and runs the task. Here: deposits made while no
worker runs complete when one starts; SIGTERM lets the running charge finish (exit 0); a worker
SIGKILLed mid-charge is replaced by another that finishes the deposit once, with one receipt;
a deposit committed while Redis is down completes when Redis is back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import worker_command
from app.core.config import get_settings
from tests.e2e.conftest import (
    ROOT,
    Server,
    free_port,
    new_customer,
    read_log,
    request_deposit,
    start_app_server,
)

WORKER_ENV = {"PSP_FAKE_LATENCY_MS": "50", "OUTBOX_POLL_SECONDS": "0.2"}


@pytest.fixture
def queue() -> str:
    """A stream of this test's own, so no other test's tasks are in it."""
    return f"ledger:test-tasks:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(migrated_database: str, queue: str) -> Iterator[Server]:
    port = free_port()
    server = start_app_server(port, env={"TASK_QUEUE": queue})
    yield server
    server.stop()


def test_deposits_made_while_no_worker_runs_complete_when_one_starts(
    api: Server, queue: str
) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        paid_in = request_deposit(client, auth, account_id, 5000)
        declined = request_deposit(client, auth, account_id, 1013)
        flaky = request_deposit(client, auth, account_id, 4242)
        time.sleep(1)
        assert client.get(f"/api/v1/deposits/{paid_in}", headers=auth).json()["status"] == "pending"

        worker = Worker(queue)
        try:
            finished = {
                deposit: _wait_until_final(client, auth, deposit, 60)["status"]
                for deposit in (paid_in, declined, flaky)
            }
            assert finished == {paid_in: "succeeded", declined: "failed", flaky: "succeeded"}, (
                worker.read()[-5000:]
            )
            failed = client.get(f"/api/v1/deposits/{declined}", headers=auth).json()
            assert failed["failure_code"] == "card_declined"
            balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
            assert balance["balance"] == 5000 + 4242  # each credited once
            # The worker's own metrics endpoint: its task runs, the deposits it finished, its pool.
            for receipted in (paid_in, flaky):
                worker.wait_for_receipt(receipted)
            metrics = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics").text
        finally:
            code = worker.stop()
        assert code == 0, worker.output[-5000:]
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        complete = (("outcome", "success"), ("task", "deposits.complete"))
        assert values[("ledger_tasks_total", complete)] >= 3  # one run each (42 retries inside)
        assert values[("ledger_deposits_total", (("outcome", "succeeded"),))] >= 2
        assert values[("ledger_deposits_total", (("outcome", "failed"),))] >= 1
        assert values[("ledger_task_duration_seconds_count", (("task", "deposits.complete"),))] >= 3
        assert ("ledger_db_pool_size", ()) in values
        assert ("ledger_queue_backlog", ()) in values


def test_a_stopping_worker_finishes_the_task_it_is_running(api: Server, queue: str) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        deposit = request_deposit(client, auth, account_id, 3000)
        # A slow card: the charge is still running when SIGTERM arrives.
        worker = Worker(queue, PSP_FAKE_LATENCY_MS="3000")
        worker.wait_for(f'"deposit_id":"{deposit}","amount":3000,"event":"deposit_charging"')
        code = worker.stop()  # the card is being charged (3 s): stop the worker now
        output = worker.output
        assert code == 0, output[-5000:]
        finished = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()
        assert finished["status"] == "succeeded", output[-5000:]
        balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
        assert balance["balance"] == 3000


class Worker:
    """A worker process (the command make run uses) in its own process group, logging to a file."""

    def __init__(self, queue: str, **env: str) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()/kill()
        self.metrics_port = free_port()
        # The command carries the shutdown bound, as make run builds it from the same settings.
        settings = get_settings()
        if "WORKER_SHUTDOWN_SECONDS" in env:
            bound = int(env["WORKER_SHUTDOWN_SECONDS"])
            settings = settings.model_copy(update={"WORKER_SHUTDOWN_SECONDS": bound})
        self.process = subprocess.Popen(  # noqa: S603 - the command make run uses
            worker_command(settings),
            cwd=ROOT,
            env={
                **os.environ,
                **WORKER_ENV,
                "TASK_QUEUE": queue,
                "WORKER_METRICS_PORT": str(self.metrics_port),
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,  # its pool process too: SIGKILL reaches the whole worker
        )
        self.output = ""

    def read(self) -> str:
        if not self.log.closed:
            self.output = read_log(self.log)
        return self.output

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.read():
            assert time.monotonic() < deadline, self.read()[-5000:]
            assert self.process.poll() is None, self.read()[-5000:]
            time.sleep(0.05)

    def wait_for_receipt(self, deposit_id: str) -> None:
        """Until this deposit's receipt is sent. Not any receipt: the outbox is the database's,
        shared by every test, and a worker relays whatever an earlier test left in it first."""
        self.wait_for(f'"deposit_id":"{deposit_id}","event":"receipt_sent"')

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node does: no shutdown, no acknowledgement."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.read()
        self.log.close()

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        finally:
            self.read()
            self.log.close()
        return code


def _wait_until_final(
    client: httpx.Client, auth: dict[str, str], deposit: str, timeout: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, object] = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()
        if body["status"] != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _receipt_sent_at(database_url: str, deposit: str) -> object:
    async def read() -> object:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.scalar(
                    text("SELECT sent_at FROM deposit_receipts WHERE deposit_id = :id"),
                    {"id": uuid.UUID(deposit)},
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


REDELIVERY_SECONDS = 8  # the task timeout is half: 4 s, above the 3 s charge
REQUEST_ID = "e2e-deposit-request-1"


def test_a_worker_killed_mid_charge_is_replaced_and_the_deposit_is_credited_once(
    api: Server, queue: str, migrated_database: str
) -> None:
    slow = {"PSP_FAKE_LATENCY_MS": "3000", "TASK_REDELIVERY_SECONDS": str(REDELIVERY_SECONDS)}
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        first = Worker(queue, **slow)
        deposit = request_deposit(client, auth, account_id, 6100, **{"X-Request-ID": REQUEST_ID})
        first.wait_for(f'"deposit_id":"{deposit}","amount":6100,"event":"deposit_charging"')
        first.kill()  # mid-charge: the message is read, never acknowledged
        killed_at = time.monotonic()
        second = Worker(queue, **slow)
        try:
            finished = _wait_until_final(client, auth, deposit, REDELIVERY_SECONDS + 30)
            took = time.monotonic() - killed_at
            second.wait_for_receipt(deposit)
        finally:
            code = second.stop()
        logs = first.output + second.output
        assert finished["status"] == "succeeded", logs[-5000:]
        # Taken over after the redelivery window, plus the 3 s charge and start-up.
        print(f"finished {took:.1f} s after the kill (redelivery {REDELIVERY_SECONDS} s)")
        balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
        assert balance["balance"] == 6100  # credited once
        receipts = [
            line for line in logs.splitlines() if '"email_sent"' in line and deposit in line
        ]
        assert len(receipts) == 1, logs[-5000:]
        assert _receipt_sent_at(migrated_database, deposit) is not None
        # The request's id follows its tasks into both workers' logs (the receipt's too).
        charging = [line for line in logs.splitlines() if "deposit_charging" in line]
        assert charging, logs[-5000:]
        assert all(f'"request_id":"{REQUEST_ID}"' in line for line in charging + receipts)
        assert code == 0, second.output[-5000:]


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def test_a_task_longer_than_the_shutdown_bound_is_cut_and_redelivered(
    api: Server, queue: str
) -> None:
    """SIGTERM waits WORKER_SHUTDOWN_SECONDS, not for ever: the cut task is not lost."""
    env = {
        "PSP_FAKE_LATENCY_MS": "4000",  # the charge outlasts the 1 s shutdown bound
        "TASK_REDELIVERY_SECONDS": "10",  # task timeout 5 s: the charge fits in it
        "WORKER_SHUTDOWN_SECONDS": "1",
    }
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        first = Worker(queue, **env)
        deposit = request_deposit(client, auth, account_id, 6300)
        first.wait_for(f'"deposit_id":"{deposit}","amount":6300,"event":"deposit_charging"')
        stopping = time.monotonic()
        code = first.stop()
        stopped_after = time.monotonic() - stopping
        assert code == 0, first.output[-5000:]
        assert stopped_after < 10, (stopped_after, first.output[-5000:])  # bound 1 s + exit
        assert client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()["status"] == (
            "pending"
        )
        second = Worker(queue, **env)
        try:
            finished = _wait_until_final(client, auth, deposit, 10 + 4 + 30)
        finally:
            second.stop()
        assert finished["status"] == "succeeded", (first.output + second.output)[-5000:]
        balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
        assert balance["balance"] == 6300


class PrivateRedis:
    """A redis-server of this test's own, on its own port, that the test stops and starts."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command
            [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_deposit_committed_while_redis_is_down_completes_when_it_is_back(
    migrated_database: str, queue: str, private_redis: PrivateRedis
) -> None:
    port = free_port()
    env = {"TASK_QUEUE": queue, "REDIS_URL": private_redis.url}
    api = start_app_server(port, env=env)
    worker = Worker(queue, REDIS_URL=private_redis.url)
    try:
        worker.wait_for("Listening started")
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            auth, account_id = new_customer(client)
            private_redis.stop()  # Redis is gone, right before the commit
            deposit = request_deposit(client, auth, account_id, 6200)
            time.sleep(2)  # the relay tries and fails: the task stays in the outbox
            pending = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()
            private_redis.start()  # an empty Redis: the stream and its group are gone too
            finished = _wait_until_final(client, auth, deposit, 60)
            balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
    finally:
        code = worker.stop()
        api.stop()
    assert pending["status"] == "pending"
    assert finished["status"] == "succeeded", worker.output[-5000:]
    assert balance["balance"] == 6200
    assert "outbox_relay_failed" in worker.output
    # The outage was waited out in the one worker process, not by restarting it.
    assert "broker_unreachable" in worker.output, worker.output[-5000:]
    assert "is dead" not in worker.output, worker.output[-5000:]
    assert "broker_group_recreated" in worker.output  # the empty Redis got its group back
    assert code == 0, worker.output[-5000:]
