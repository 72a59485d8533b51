"""Command line: `python -m app.cli db create|seed|ledger verify|run|webhook|backup|restore-drill`.

`run` is what `make run` does: on a machine without PostgreSQL or Redis it starts embedded ones
(app.local_services), creates the database, migrates and seeds; then, as a small supervisor, it
starts the API, a worker and the scheduler as child processes, says
where the docs are once the API answers, and stops them all cleanly on Ctrl-C or SIGTERM. Each
child gets the signal the supervisor got: outside production Ctrl-C (SIGINT) stops the API at
once, while SIGTERM always drains first (`app.server`).

`webhook` plays the payment provider for the demo: it signs an event about a deposit with
PSP_WEBHOOK_SECRET and posts it to the running API, as the provider would.

`backup` and `restore-drill` are app.backup's: a dump with its manifest, and the proof that the
newest one restores into a ledger that verifies and matches it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import backup as backups
from app import seed as seed_steps
from app.core.config import DEV_DEMO_PASSWORD, Environment, Settings, get_settings
from app.core.db import create_engine, create_session_factory
from app.core.logging import configure_logging
from app.core.security import PasswordHasher
from app.deposits.signature import HEADER, sign
from app.ledger import service as ledger_service
from app.local_services import announce, start_missing

ROOT = Path(__file__).resolve().parents[1]


async def create_database(settings: Settings) -> bool:
    """Create the configured database if it is missing; True when it was created."""
    url = make_url(str(settings.DATABASE_URL))
    name = url.database or ""
    # CREATE DATABASE cannot run in a transaction: connect to the maintenance db in autocommit.
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists:
                return False
            # Identifiers cannot be bound parameters; let Postgres quote it.
            quoted = await connection.scalar(text("SELECT quote_ident(:name)"), {"name": name})
            await connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        await engine.dispose()


async def seed(settings: Settings) -> list[str]:
    """Run every seed step in one transaction: all of it lands, or none."""
    engine = create_engine(settings)
    hasher = PasswordHasher(settings)
    try:
        # What the seed changes (a promoted admin) must not be read stale: the commit records
        # the cache scopes it touched, and every API process applies them (ADR 0016).
        async with create_session_factory(engine)() as session, session.begin():
            return [await step(session, settings, hasher) for step in seed_steps.STEPS]
    finally:
        hasher.close()
        await engine.dispose()


async def verify_ledger(settings: Settings) -> list[str]:
    """Every breach of a ledger invariant, read in one repeatable-read snapshot."""
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            # Opens the (read-only) transaction: every check sees the same snapshot.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return await ledger_service.verify_ledger(session)
    finally:
        await engine.dispose()


def worker_command(settings: Settings) -> list[str]:
    """One worker process; on SIGTERM its running tasks get WORKER_SHUTDOWN_SECONDS to finish."""
    # Built here, not in app.worker, so the CLI never imports the broker and its tasks.
    return [
        sys.executable,
        "-m",
        "app.run_worker",
        "--workers",
        "1",
        "--wait-tasks-timeout",
        str(settings.WORKER_SHUTDOWN_SECONDS),
    ]


def scheduler_command() -> list[str]:
    """The one scheduler: sends the periodic jobs (clean-ups, the deposits' sweeper) on time."""
    return [sys.executable, "-m", "app.scheduler"]


def _children_commands(settings: Settings) -> list[list[str]]:
    # The API, one worker process (its tasks, and the outbox relay) and the scheduler.
    return [[sys.executable, "-m", "app.server"], worker_command(settings), scheduler_command()]


def _local_host(settings: Settings) -> str:
    # A server bound to every interface is reached on loopback from this machine.
    return "127.0.0.1" if settings.HOST in ("0.0.0.0", "::", "") else settings.HOST  # noqa: S104


def welcome(settings: Settings) -> str:
    """What `make run` prints once the API answers: where to click, and who to sign in as."""
    host = _local_host(settings)
    if ":" in host:
        host = f"[{host}]"
    lines = [f"fastapi-ledger is up: open http://{host}:{settings.PORT}/docs"]
    if settings.ENVIRONMENT is not Environment.PRODUCTION:
        password = settings.DEMO_USER_PASSWORD.get_secret_value()
        # Only the well-known default is printed; a password of your own stays off the screen.
        shown = password if password == DEV_DEMO_PASSWORD else "DEMO_USER_PASSWORD from .env"
        lines.append(f"  Authorize as {settings.DEMO_USER_EMAIL} / {shown} (the seeded demo user)")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines)


def _announce_when_up(settings: Settings, stop: threading.Event) -> None:
    address = (_local_host(settings), settings.PORT)
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with socket.create_connection(address, timeout=0.5):
                print(welcome(settings), flush=True)
                return
        except OSError:
            stop.wait(0.2)


def prepare(settings: Settings) -> None:
    """Create the database if it is missing, migrate it to head, seed it (all idempotent)."""
    created = asyncio.run(create_database(settings))
    print("database created" if created else "database already exists", flush=True)
    config = AlembicConfig(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = str(settings.DATABASE_URL)
    alembic_command.upgrade(config, "head")
    for line in asyncio.run(seed(settings)):
        print(line, flush=True)


def serve(settings: Settings) -> int:
    """`make run`: embedded servers where none answer, prepare, run; stop it all at the end."""
    services = start_missing(
        environment=settings.ENVIRONMENT,
        database_url=str(settings.DATABASE_URL),
        redis_url=str(settings.REDIS_URL),
        data_dir=settings.LOCAL_DATA_DIR,
    )
    announce(services)
    try:
        if services.environ:  # the embedded database's URL, for us and every child
            settings = Settings(**services.environ)  # type: ignore[arg-type]
        prepare(settings)
        return run(settings, env=services.environ)
    finally:
        services.stop()


def run(settings: Settings, *, env: dict[str, str] | None = None) -> int:
    """Start every process of the service and stop them all on Ctrl-C / SIGTERM."""
    # The commands are built from sys.executable and validated settings, never user input.
    # Own process groups: a terminal's Ctrl-C reaches only us, and we stop each child once.
    # Settings reach the children through the environment they inherit, plus `env`.
    child_env = {**os.environ, **(env or {})}
    children = [
        subprocess.Popen(command, process_group=0, env=child_env)  # noqa: S603
        for command in _children_commands(settings)
    ]
    stopping = threading.Event()
    threading.Thread(target=_announce_when_up, args=(settings, stopping), daemon=True).start()

    def forward(signum: int, _: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # If any child exits on its own, stop the others: a half-running service is worse. Once
    # stopping, each child has had its one signal: a second one could cut its shutdown short.
    codes = []
    for child in children:
        code = child.wait()
        if not stopping.is_set():
            forward(signal.SIGTERM, None)
        codes.append(128 - code if code < 0 else code)  # killed by signal N -> 128 + N
    return max(codes, default=0)


def send_webhook(
    settings: Settings,
    *,
    event_type: str,
    deposit_id: str,
    failure_code: str | None = None,
    event_id: str | None = None,
    url: str | None = None,
) -> tuple[int, str]:
    """Sign an event as the provider does and post it to the API; its status and body."""
    data: dict[str, str] = {"deposit_id": deposit_id}
    if failure_code is not None:
        data["failure_code"] = failure_code
    event = {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": event_type, "data": data}
    body = json.dumps(event).encode()
    header = sign(settings.PSP_WEBHOOK_SECRET.get_secret_value(), body)
    target = url or f"http://{_local_host(settings)}:{settings.PORT}/api/v1/webhooks/psp"
    response = httpx.post(
        target,
        content=body,
        headers={"Content-Type": "application/json", HEADER: header},
        timeout=10,
    )
    return response.status_code, response.text


def _backup_command(settings: Settings, command: str, *, every: bool) -> int:
    missing = backups.tools_missing()
    if missing:
        print(
            f"{command} needs {' and '.join(missing)} (Debian: postgresql-client)", file=sys.stderr
        )
        return 2
    if command == "backup":
        if every:
            backups.run_every(settings)
        made = asyncio.run(backups.backup(settings))
        rows = sum(made.manifest["rows"].values())
        print(f"backup: {made.dump} ({made.dump.stat().st_size} bytes; {rows} rows, "
              f"{len(made.manifest['balances'])} balances in its manifest)")  # fmt: skip
        return 0
    try:
        dump, problems = asyncio.run(backups.restore_drill(settings))
    except backups.BackupError as exc:
        print(f"restore drill FAILED: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"DIFFERENCE: {problem}", file=sys.stderr)
    if problems:
        print(f"restore drill FAILED: {dump.name}: {len(problems)} difference(s)", file=sys.stderr)
        return 1
    print(f"restore drill: OK: {dump.name} restored into a scratch database; ledger verify OK; "
          "every row count and balance matches its manifest")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m app.cli`."""
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    db = commands.add_parser("db", help="database administration")
    db.add_subparsers(dest="db_command", required=True).add_parser(
        "create", help="create the database named in DATABASE_URL if it is missing"
    )
    commands.add_parser(
        "seed", help="idempotent seed: the admin; outside production a funded demo user"
    )
    ledger = commands.add_parser("ledger", help="ledger maintenance")
    ledger.add_subparsers(dest="ledger_command", required=True).add_parser(
        "verify", help="check every ledger invariant; exit 1 and name each breach"
    )
    commands.add_parser(
        "run",
        help="make run: embedded PostgreSQL/Redis if none answer, create, migrate, seed, then "
        "run the API (and workers) until Ctrl-C",
    )
    webhook = commands.add_parser(
        "webhook", help="sign a payment-provider event with PSP_WEBHOOK_SECRET and post it"
    )
    webhook.add_argument("type", choices=["charge.succeeded", "charge.failed"])
    webhook.add_argument("deposit_id")
    webhook.add_argument("--failure-code", help="with charge.failed, e.g. card_declined")
    webhook.add_argument("--event-id", help="send this event id again (it is deduplicated)")
    webhook.add_argument("--url", help="default: this API's /api/v1/webhooks/psp")
    dump = commands.add_parser(
        "backup", help="pg_dump the database (custom format) with a manifest; keep BACKUP_KEEP"
    )
    dump.add_argument(
        "--every", action="store_true",
        help="the backup job: one each BACKUP_INTERVAL_SECONDS, metrics on BACKUP_METRICS_PORT",
    )  # fmt: skip
    commands.add_parser(
        "restore-drill",
        help="restore the newest backup into a scratch database, verify it, compare with it",
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    if args.command == "db":
        created = asyncio.run(create_database(settings))
        print("database created" if created else "database already exists")
        return 0
    if args.command == "seed":
        for line in asyncio.run(seed(settings)):
            print(line)
        print(f"seed complete ({len(seed_steps.STEPS)} steps)")
        return 0
    if args.command == "ledger":
        breaches = asyncio.run(verify_ledger(settings))
        for breach in breaches:
            print(f"BREACH: {breach}", file=sys.stderr)
        print(f"ledger verify: {len(breaches)} breach(es)" if breaches else "ledger verify: OK")
        return 1 if breaches else 0
    if args.command in ("backup", "restore-drill"):
        return _backup_command(settings, args.command, every=getattr(args, "every", False))
    if args.command == "webhook":
        if args.type == "charge.failed" and args.failure_code is None:
            parser.error("charge.failed needs --failure-code")
        status, answer = send_webhook(
            settings,
            event_type=args.type,
            deposit_id=args.deposit_id,
            failure_code=args.failure_code,
            event_id=args.event_id,
            url=args.url,
        )
        print(status, answer)
        return 0 if status == 200 else 1
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
