"""Backups round-trip on the real PostgreSQL, after real payments and deposits (SPEC §7).

A real API and worker move money; `python -m app.cli backup` (what `make backup` runs) dumps
the database, `restore-drill` restores the newest dump into a scratch database, verifies the
ledger there and compares every row count and balance with the dump's manifest. Then the drill
must fail loudly when the backup does not match (a manifest altered, a dump cut short), and
only the newest BACKUP_KEEP dumps stay.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app import backup as backups
from app.core.config import get_settings
from tests.e2e.conftest import (
    ROOT,
    Server,
    free_port,
    new_customer,
    request_deposit,
    start_app_server,
)
from tests.e2e.test_worker import Worker


def _cli(*args: str, backup_dir: Path, keep: int = 7) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the command make runs
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**os.environ, "BACKUP_DIR": str(backup_dir), "BACKUP_KEEP": str(keep)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def money_moved(migrated_database: str) -> dict[str, int]:
    """Deposits completed by a real worker and payments between two customers: the balances."""
    queue = f"ledger:test-tasks:{uuid.uuid4().hex[:8]}"  # this test's own stream
    port = free_port()
    server = start_app_server(port, env={"TASK_QUEUE": queue})
    worker = Worker(queue)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            auth, payer = new_customer(client)
            other_auth, payee = new_customer(client)
            deposits = [request_deposit(client, auth, payer, amount) for amount in (7000, 1013)]
            deadline = time.monotonic() + 60
            while any(
                client.get(f"/api/v1/deposits/{d}", headers=auth).json()["status"] == "pending"
                for d in deposits
            ):
                assert time.monotonic() < deadline, worker.read()[-3000:]
                time.sleep(0.2)
            for amount in (1200, 300):
                paid = client.post(
                    "/api/v1/payments",
                    json={
                        "source_account_id": payer,
                        "destination_account_id": payee,
                        "amount": amount,
                        "currency": "EUR",
                    },
                    headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                )
                assert paid.status_code == 201, paid.text
            balances = {
                account: client.get(f"/api/v1/accounts/{account}", headers=h).json()["balance"]
                for account, h in ((payer, auth), (payee, other_auth))
            }
    finally:
        worker.stop()
        server.stop()
    assert balances == {payer: 7000 - 1500, payee: 1500}  # the declined deposit moved nothing
    return balances


def test_a_backup_restores_into_a_ledger_that_verifies_and_matches(
    money_moved: dict[str, int], tmp_path: Path
) -> None:
    made = _cli("backup", backup_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    (dump,) = backups.backups(tmp_path)
    manifest = json.loads(dump.with_suffix(".json").read_text())
    for account, balance in money_moved.items():
        assert manifest["balances"][account] == balance
    assert manifest["rows"]["payments"] >= 2
    assert manifest["rows"]["deposits"] >= 2

    drill = _cli("restore-drill", backup_dir=tmp_path)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "restore drill: OK" in drill.stdout


def test_the_drill_fails_loudly_when_the_backup_does_not_match(
    money_moved: dict[str, int], tmp_path: Path
) -> None:
    assert _cli("backup", backup_dir=tmp_path).returncode == 0
    (dump,) = backups.backups(tmp_path)
    manifest_path = dump.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    account = next(iter(money_moved))
    manifest["balances"][account] += 1
    manifest["rows"]["payments"] += 1
    manifest_path.write_text(json.dumps(manifest))

    drill = _cli("restore-drill", backup_dir=tmp_path)
    assert drill.returncode == 1
    assert f"account {account}: balance" in drill.stderr
    assert "table payments: rows" in drill.stderr

    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])  # cut short
    cut = _cli("restore-drill", backup_dir=tmp_path)
    assert cut.returncode == 1
    assert "pg_restore exited" in cut.stderr


def test_only_the_newest_backups_are_kept(server: Server, tmp_path: Path) -> None:
    settings = get_settings().model_copy(update={"BACKUP_DIR": tmp_path, "BACKUP_KEEP": 2})
    made = [asyncio.run(backups.backup(settings)).dump for _ in range(3)]
    assert backups.backups(tmp_path) == made[1:]
    assert not made[0].with_suffix(".json").exists()
    assert not list(tmp_path.glob(".*partial"))  # nothing half-written is left behind


def test_without_a_backup_the_drill_says_what_to_do(tmp_path: Path) -> None:
    drill = _cli("restore-drill", backup_dir=tmp_path / "empty")
    assert drill.returncode == 1
    assert "run `make backup` first" in drill.stderr
