"""`make secrets`: the compose demo's secret files in .secrets/, random, made once, never committed.

compose.yaml hands each file to the services that need it as a compose secret, mounted at
/run/secrets/<name>; the app reads its settings from there (app.core.config, `secrets_dir`),
Postgres, Grafana and Alertmanager read theirs by file path. A file that exists is kept, so a
second run changes nothing and a database made with the first password keeps working.

The alert tokens cannot be invented: they start as placeholders (Alertmanager then logs its
failed deliveries) and are replaced with a real Telegram bot token and Slack webhook URL.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRECTORY = ROOT / ".secrets"


def _database_url(password: str) -> str:
    return f"postgresql+asyncpg://ledger:{password}@postgres:5432/ledger"


def generate(directory: Path = DIRECTORY) -> list[str]:
    """Write every missing secret file; the names written."""
    # The directory is private to its owner; the files in it are readable by all, since compose
    # bind-mounts each one as it is and the app runs as uid 10001, not as their owner.
    directory.mkdir(mode=0o700, exist_ok=True)
    written = []
    password_file = directory / "postgres_password"
    if not password_file.exists():
        _write(password_file, secrets.token_urlsafe(24))
        written.append(password_file.name)
    password = password_file.read_text().strip()
    wanted = {
        # Named as the app's settings: pydantic-settings reads /run/secrets/<SETTING>.
        "DATABASE_URL": _database_url(password),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PSP_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "FIRST_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "grafana_admin_password": secrets.token_urlsafe(18),
        "telegram_bot_token": "replace-with-your-bot-token",
        "slack_webhook_url": "https://hooks.slack.com/services/replace/with/yours",
    }
    for name, value in wanted.items():
        path = directory / name
        if not path.exists():
            _write(path, value)
            written.append(name)
    return written


def _write(path: Path, value: str) -> None:
    path.write_text(value)
    path.chmod(0o644)


def main() -> int:
    """Create what is missing and say what was made."""
    written = generate()
    for name in written:
        print(f"created .secrets/{name}")
    if not written:
        print("every secret in .secrets/ exists already: nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
