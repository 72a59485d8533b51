"""What `make run` tells a newcomer once the API answers."""

from __future__ import annotations

from pydantic import SecretStr

from app.cli import welcome
from app.core.config import Settings
from tests.production_settings import PRODUCTION


def test_welcome_names_the_docs_url_of_the_configured_address_and_the_demo_login() -> None:
    text = welcome(Settings(HOST="127.0.0.1", PORT=8123))
    assert "open http://127.0.0.1:8123/docs" in text
    assert "Authorize as demo@example.com / demo-password-2026" in text


def test_a_server_on_every_interface_is_shown_on_loopback() -> None:
    assert "http://127.0.0.1:9000/docs" in welcome(Settings(HOST="0.0.0.0", PORT=9000))  # noqa: S104
    assert "http://[::1]:9000/docs" in welcome(Settings(HOST="::1", PORT=9000))


def test_a_password_of_your_own_is_never_printed() -> None:
    text = welcome(Settings(DEMO_USER_PASSWORD=SecretStr("my-own-secret-passphrase")))
    assert "my-own-secret-passphrase" not in text
    assert "DEMO_USER_PASSWORD from .env" in text


def test_production_names_no_demo_user() -> None:
    assert "demo" not in welcome(Settings(**PRODUCTION)).lower()
