"""Backups you can restore: `pg_dump` files with a manifest, and a drill that restores one.

`python -m app.cli backup` (what `make backup` runs) writes BACKUP_DIR/ledger-<UTC time>.dump
in pg_dump's custom format and, beside it, a manifest: every table's row count and every
account's balance, read in the **same snapshot** as the dump (a repeatable-read transaction
exports its snapshot and pg_dump dumps exactly that), so the two agree even under traffic. Both
files are written under a temporary name and renamed when complete: a half-written dump is
never the newest. The newest BACKUP_KEEP dumps are kept.

`python -m app.cli restore-drill` (`make restore-drill`) restores the newest dump into a
scratch database, runs `ledger verify` on it, compares every row count and every balance with
the manifest, drops the scratch database, and names each difference: a backup that cannot be
restored is found on the day it is made, not on the day it is needed.

`backup --every` is the compose job: one backup each BACKUP_INTERVAL_SECONDS, and
`ledger_backup_last_success_timestamp_seconds` on BACKUP_METRICS_PORT for the
LedgerBackupTooOld alert.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy import URL, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.core.config import Settings
from app.core.db import create_session_factory
from app.core.logging import get_logger
from app.ledger import service as ledger_service

logger = get_logger(__name__)

PREFIX = "ledger-"
SUFFIX = ".dump"


class BackupError(Exception):
    """pg_dump or pg_restore failed; the message carries what it printed."""


@dataclass(frozen=True)
class Backup:
    """One dump on disk and the manifest taken in its snapshot."""

    dump: Path
    manifest: dict[str, dict[str, int]]

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lies: beside the dump."""
        return self.dump.with_suffix(".json")


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore connection arguments and environment (the password never in argv)."""
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432)]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ, "PGPASSWORD": url.password or ""} if url.password else dict(os.environ)
    return args, env


async def _run(command: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise BackupError(f"{command[0]} exited {process.returncode}: {output.decode()[-2000:]}")


async def _manifest(connection: AsyncConnection) -> dict[str, dict[str, int]]:
    """Row counts of every table of the public schema, and every account's balance."""
    tables = (
        await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        )
    ).scalars()
    counts: dict[str, int] = {}
    for table in tables:
        # The names come from the catalogue, quoted as identifiers: no user input is involved.
        counts[table] = (
            await connection.execute(text(f'SELECT count(*) FROM public."{table}"'))  # noqa: S608
        ).scalar_one()
    balances = {
        str(account): int(balance)
        for account, balance in await connection.execute(
            text("SELECT id, balance FROM accounts ORDER BY id")
        )
    }
    return {"rows": counts, "balances": balances}


async def backup(settings: Settings) -> Backup:
    """Dump the database with its manifest from one snapshot; keep the newest BACKUP_KEEP."""
    url = make_url(str(settings.DATABASE_URL))
    directory = settings.BACKUP_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"{PREFIX}{stamp}{SUFFIX}"
    partial = directory / f".{final.name}.partial"
    args, env = _libpq(url)
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                snapshot = (
                    await connection.execute(text("SELECT pg_export_snapshot()"))
                ).scalar_one()
                manifest = await _manifest(connection)
                # The transaction stays open while pg_dump reads: its snapshot must live.
                await _run(
                    [
                        "pg_dump", *args, "--format=custom", f"--snapshot={snapshot}",
                        "--no-owner", "--no-privileges", f"--file={partial}",
                        str(url.database),
                    ],
                    env,
                )  # fmt: skip
    finally:
        await engine.dispose()
    made = Backup(final, manifest)
    made.manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.rename(final)  # last: a dump is "the newest" only once it and its manifest exist
    _prune(directory, settings.BACKUP_KEEP)
    logger.info(
        "backup_written",
        file=final.name,
        bytes=final.stat().st_size,
        tables=len(manifest["rows"]),
        accounts=len(manifest["balances"]),
    )
    return made


def backups(directory: Path) -> list[Path]:
    """The complete dumps in `directory`, oldest first (their names sort by time)."""
    return sorted(directory.glob(f"{PREFIX}*{SUFFIX}"))


def _prune(directory: Path, keep: int) -> None:
    for old in backups(directory)[:-keep]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
        logger.info("backup_pruned", file=old.name)


def compare(expected: dict[str, dict[str, int]], found: dict[str, dict[str, int]]) -> list[str]:
    """Every difference between a manifest and what a restored database holds."""
    problems = []
    for kind in ("rows", "balances"):
        want, got = expected.get(kind, {}), found.get(kind, {})
        for key in sorted(want.keys() | got.keys()):
            if want.get(key) != got.get(key):
                what = "table" if kind == "rows" else "account"
                noun = "rows" if kind == "rows" else "balance"
                problems.append(
                    f"{what} {key}: {noun} {want.get(key)} in the backup, {got.get(key)} restored"
                )
    return problems


async def restore_drill(settings: Settings) -> tuple[Path, list[str]]:
    """Restore the newest dump into a scratch database and check it; (dump, problems)."""
    found = backups(settings.BACKUP_DIR)
    if not found:
        raise BackupError(f"no backup in {settings.BACKUP_DIR}: run `make backup` first")
    dump = found[-1]
    manifest_path = dump.with_suffix(".json")
    if not manifest_path.exists():
        raise BackupError(f"{dump.name} has no manifest ({manifest_path.name})")
    expected = json.loads(manifest_path.read_text())
    url = make_url(str(settings.DATABASE_URL))
    scratch = url.set(database=f"{url.database}_restore_{secrets.token_hex(4)}")
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    args, env = _libpq(url)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{scratch.database}"'))
        await _run(
            [
                "pg_restore", *args, "--exit-on-error", "--no-owner", "--no-privileges",
                f"--dbname={scratch.database}", str(dump),
            ],
            env,
        )  # fmt: skip
        engine = create_async_engine(scratch)
        try:
            async with engine.connect() as connection:
                restored = await _manifest(connection)
            async with create_session_factory(engine)() as session:
                breaches = await ledger_service.verify_ledger(session)
        finally:
            await engine.dispose()
    finally:
        async with admin.connect() as connection:
            await connection.execute(
                text(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)')
            )
        await admin.dispose()
    problems = [f"ledger verify: {breach}" for breach in breaches]
    return dump, problems + compare(expected, restored)


def run_every(settings: Settings) -> None:
    """The backup job: one backup now and every BACKUP_INTERVAL_SECONDS, its outcome served."""
    registry = CollectorRegistry()
    last_success = Gauge(
        "ledger_backup_last_success_timestamp_seconds",
        "When the newest good backup finished (Unix time).",
        registry=registry,
    )
    size = Gauge(
        "ledger_backup_last_size_bytes", "Size of the newest good dump.", registry=registry
    )
    failures = Counter("ledger_backup_failures", "Backups that failed.", registry=registry)
    newest = backups(settings.BACKUP_DIR)
    if newest:  # a restart does not forget the last success
        last_success.set(newest[-1].stat().st_mtime)
    start_http_server(settings.BACKUP_METRICS_PORT, addr=settings.HOST, registry=registry)
    while True:
        try:
            made = asyncio.run(backup(settings))
        except (BackupError, OSError) as exc:
            failures.inc()
            logger.error("backup_failed", error=str(exc)[-500:])
        else:
            last_success.set(time.time())
            size.set(made.dump.stat().st_size)
        time.sleep(settings.BACKUP_INTERVAL_SECONDS)


def tools_missing() -> list[str]:
    """The PostgreSQL client programs this module needs and cannot find."""
    return [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
