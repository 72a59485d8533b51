"""`python -m app.cli`: `db create` is idempotent and never touches an existing database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url

from app import cli
from tests.conftest import TEST_DATABASE_URL, admin_execute


@pytest.fixture
def new_database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_cli_{uuid.uuid4().hex[:8]}"
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    yield name
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_db_create_creates_once_then_reports_it_exists(
    new_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["db", "create"]) == 0
    assert capsys.readouterr().out == "database created\n"
    assert cli.main(["db", "create"]) == 0
    assert capsys.readouterr().out == "database already exists\n"


@pytest.mark.usefixtures("migrated_database")
def test_seed_is_idempotent_and_creates_the_admin_and_the_demo_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIRST_ADMIN_EMAIL", "Seed.Admin@Example.com")
    monkeypatch.setenv("DEMO_USER_EMAIL", "seed.demo@example.com")
    assert cli.main(["seed"]) == 0
    assert capsys.readouterr().out == (
        "admin seed.admin@example.com created\n"
        "demo user seed.demo@example.com created\n"
        "demo account funded with 100000 minor units of EUR\n"
        "seed complete (3 steps)\n"
    )
    assert cli.main(["seed"]) == 0
    assert capsys.readouterr().out == (
        "admin seed.admin@example.com already exists\n"
        "demo user seed.demo@example.com already exists\n"
        "demo account already exists\n"
        "seed complete (3 steps)\n"
    )
    assert cli.main(["ledger", "verify"]) == 0
    assert capsys.readouterr().out == "ledger verify: OK\n"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["explode"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
