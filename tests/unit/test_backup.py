"""The backup module's pure parts, and the backup job's loop and metrics (no database)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app import backup as backups
from app.core.config import Settings


def test_compare_names_every_difference_and_nothing_else() -> None:
    manifest = {"rows": {"payments": 3, "users": 2}, "balances": {"a": 10, "b": -10}}
    assert backups.compare(manifest, manifest) == []
    restored = {"rows": {"payments": 2, "users": 2, "extra": 1}, "balances": {"a": 10}}
    assert backups.compare(manifest, restored) == [
        "table extra: rows None in the backup, 1 restored",
        "table payments: rows 3 in the backup, 2 restored",
        "account b: balance -10 in the backup, None restored",
    ]


class _StopLoopError(Exception):
    """Raised by the fake sleep: the only way out of the job's loop."""


def test_the_job_counts_failures_and_serves_its_last_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(BACKUP_DIR=tmp_path, BACKUP_INTERVAL_SECONDS=60)
    served: list[CollectorRegistry] = []
    monkeypatch.setattr(
        backups, "start_http_server", lambda port, addr, registry: served.append(registry)
    )
    outcomes: list[object] = [backups.BackupError("pg_dump exited 1: disk full")]

    async def fake_backup(_: Settings) -> backups.Backup:
        if outcomes:
            raise outcomes.pop()  # type: ignore[misc]
        dump = tmp_path / "ledger-20261204T000000000000Z.dump"
        dump.write_bytes(b"x" * 42)
        return backups.Backup(dump, {"rows": {}, "balances": {}})

    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise _StopLoopError

    monkeypatch.setattr(backups, "backup", fake_backup)
    monkeypatch.setattr("app.backup.time.sleep", fake_sleep)
    before = time.time()
    with pytest.raises(_StopLoopError):
        backups.run_every(settings)
    (registry,) = served
    assert sleeps == [60, 60]
    assert registry.get_sample_value("ledger_backup_failures_total") == 1
    assert registry.get_sample_value("ledger_backup_last_size_bytes") == 42
    last = registry.get_sample_value("ledger_backup_last_success_timestamp_seconds")
    assert last is not None
    assert last >= before
