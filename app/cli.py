"""Command line: `python -m app.cli db create | seed | run`.

`run` is a small supervisor: it starts the API (and, once they exist, the worker and the
scheduler) as child processes and stops them all cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.accounts import service as accounts_service
from app.adjustments import service as adjustments_service
from app.auth import service as auth_service
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_session_factory
from app.core.logging import configure_logging
from app.core.security import PasswordHasher

# Each step is idempotent and says what it did. Order matters: the admin first.
SeedStep = Callable[[AsyncSession, PasswordHasher], Awaitable[str]]
SEED_STEPS: list[SeedStep] = [
    lambda session, hasher: auth_service.seed_admin(session, hasher=hasher),
    lambda session, hasher: auth_service.seed_demo_user(session, hasher=hasher),
    lambda session, _: adjustments_service.seed_demo_funding(session),
]


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
            return [await step(session, hasher) for step in SEED_STEPS]
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
            return await accounts_service.verify_ledger(session)
    finally:
        await engine.dispose()


def _children_commands(settings: Settings) -> list[list[str]]:
    # Settings reach the children through the environment they inherit.
    return [[sys.executable, "-m", "app.server"]]


def run(settings: Settings) -> int:
    """Start every process of the service and stop them all on Ctrl-C / SIGTERM."""
    # The commands are built from sys.executable and validated settings, never user input.
    # Own process groups: a terminal's Ctrl-C reaches only us, and we stop each child once.
    children = [
        subprocess.Popen(command, process_group=0)  # noqa: S603
        for command in _children_commands(settings)
    ]

    def forward(signum: int, _: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # If any child exits on its own, stop the others: a half-running service is worse.
    codes = []
    for child in children:
        code = child.wait()
        forward(signal.SIGTERM, None)
        codes.append(128 - code if code < 0 else code)  # killed by signal N -> 128 + N
    return max(codes, default=0)


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
    commands.add_parser("run", help="run the API (and workers) until Ctrl-C")
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
        print(f"seed complete ({len(SEED_STEPS)} steps)")
        return 0
    if args.command == "ledger":
        breaches = asyncio.run(verify_ledger(settings))
        for breach in breaches:
            print(f"BREACH: {breach}", file=sys.stderr)
        print(f"ledger verify: {len(breaches)} breach(es)" if breaches else "ledger verify: OK")
        return 1 if breaches else 0
    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
