"""Test set-up shared by every layer: a throw-away database built by the real migrations.

The environment is set here, before any `app` import, so `get_settings()` sees the test
database everywhere (the app, Alembic's env.py and the CLI alike).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Environment
from app.local_services import start_missing

ROOT = Path(__file__).resolve().parents[1]

# No PostgreSQL or Redis at the default addresses (a fresh laptop): the suite starts embedded
# ones, as `make run` does, in a folder of its own so it never stops a `make run`'s servers.
_LOCAL = start_missing(
    environment=Environment.TEST,
    database_url=os.environ.get(
        "DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
    redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    data_dir=ROOT / ".local" / "test",
)
os.environ.update(_LOCAL.environ)

# The suite uses the server named by DATABASE_URL (if set) but never its database: it creates
# and drops its own, connecting to the `postgres` maintenance database to do so.
_BASE_URL = make_url(
    os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
).set(database="postgres")
TEST_DATABASE_NAME = f"ledger_test_{uuid.uuid4().hex[:10]}"
TEST_DATABASE_URL = _BASE_URL.set(database=TEST_DATABASE_NAME).render_as_string(hide_password=False)
# A pristine copy of the migrated database that nobody connects to: what tests that really
# commit clone for a database of their own (CREATE DATABASE ... TEMPLATE needs an idle source).
TEMPLATE_DATABASE_NAME = f"{TEST_DATABASE_NAME}_template"
# Redis database 15 keeps test keys away from anything else on a shared server; TEST_REDIS_DB
# picks another, so two suites (two checkouts) can run side by side without flushing each other.
_REDIS_SERVER = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
TEST_REDIS_URL = f"{_REDIS_SERVER}/{int(os.environ.get('TEST_REDIS_DB', '15'))}"

os.environ.update(
    {
        "ENVIRONMENT": "test",
        "DATABASE_URL": TEST_DATABASE_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        # Cheap Argon2id for speed; tests/integration/auth checks the production defaults too.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
        # Every in-process request comes from 127.0.0.1: limits high enough for the suite;
        # tests/integration/core/test_rate_limit.py sets small ones on apps of its own.
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_LOGIN_PER_IP": "100000/minute",
        "RATE_LIMIT_LOGIN_PER_ACCOUNT": "100000/minute",
        "RATE_LIMIT_REGISTER": "100000/minute",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "100000/minute",
        "RATE_LIMIT_PASSWORD_CHECK": "100000/minute",
        "DRAIN_SECONDS": "0",
    }
)


def admin_execute(statement: str) -> None:
    """Run one statement on the maintenance database, outside any transaction."""
    asyncio.run(_admin_execute(statement))


async def _admin_execute(statement: str) -> None:
    engine = create_async_engine(_BASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def alembic_config() -> Config:
    """Alembic pointed at the test database, without reconfiguring the app's logging."""
    config = Config("alembic.ini")
    config.attributes["database_url"] = TEST_DATABASE_URL
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture(scope="session")
def migrated_database() -> Iterator[str]:
    """Create the test database, build the schema with `alembic upgrade head`, drop it after.

    Also its template copy (see `database_copy`), made before anything else connects.
    """
    admin_execute(f'CREATE DATABASE "{TEST_DATABASE_NAME}"')
    try:
        command.upgrade(alembic_config(), "head")
        admin_execute(f'CREATE DATABASE "{TEMPLATE_DATABASE_NAME}" TEMPLATE "{TEST_DATABASE_NAME}"')
        yield TEST_DATABASE_URL
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DATABASE_NAME}" WITH (FORCE)')
        admin_execute(f'DROP DATABASE IF EXISTS "{TEST_DATABASE_NAME}" WITH (FORCE)')


@contextmanager
def database_copy(migrated_database: str) -> Iterator[str]:
    """A migrated database of one's own (a copy of the template), dropped afterwards.

    For tests that commit: what they write is theirs alone, so a check over the whole database
    (`ledger verify`) sees only their rows, whatever ran before them.
    """
    name = f"{TEST_DATABASE_NAME}_{uuid.uuid4().hex[:8]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DATABASE_NAME}"')
    try:
        yield make_url(migrated_database).set(database=name).render_as_string(hide_password=False)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test sees settings from the environment as it is (monkeypatch may change it)."""
    from app.core.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


LogReader = Callable[[], list[dict[str, object]]]


@pytest.fixture
def log_lines(capsys: pytest.CaptureFixture[str]) -> LogReader:
    """Configure JSON logging onto the captured stderr; return a reader of the parsed lines."""
    from app.core.logging import configure_logging

    configure_logging(level="INFO", fmt="json")

    def read() -> list[dict[str, object]]:
        lines = capsys.readouterr().err.splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    return read


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say which embedded servers the suite started (the terminal, past pytest's capture)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for message in _LOCAL.messages:
        if reporter is not None:
            reporter.write_line(message)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the embedded servers this session started (if any)."""
    _LOCAL.stop()
