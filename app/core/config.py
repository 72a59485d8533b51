"""Application settings: 12-factor, read from the environment (and .env), validated at start-up."""

from __future__ import annotations

import enum
import ipaddress
import math
import zlib
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_limit
from pydantic import (
    Field,
    PostgresDsn,
    RedisDsn,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development defaults that must never reach production: start-up refuses them there.
DEV_SECRET_KEY = "dev-only-secret-key-change-me-0123456789abcdef"  # noqa: S105 - refused in prod
DEV_ADMIN_PASSWORD = "change-me-admin-password"  # noqa: S105 - refused in prod
DEV_DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - the demo user exists only outside prod
DEV_WEBHOOK_SECRET = "dev-only-webhook-secret"  # noqa: S105 - refused in prod
KNOWN_WEAK_SECRETS = frozenset(
    {DEV_SECRET_KEY, "changeme", "change-me", "secret", "password", "development"}
)


# Production floors, in estimated bits (see `estimated_entropy_bits`): `secrets.token_urlsafe(48)`
# (the recipe .env.example gives) scores ~330 and a 64-character hex key over 200; "password" * 4
# scores 88 and "a" * 32 0. A 32-character hex key (128 random bits) scores ~110, but about one
# in 200,000 of them under 90: the estimate cannot tell it from "password" * 4, so use longer.
MIN_SECRET_KEY_BITS = 90
MIN_ADMIN_PASSWORD_LENGTH = 16
MIN_ADMIN_PASSWORD_BITS = 50
# Where compose and Kubernetes mount secret files: a file named after a setting (DATABASE_URL,
# SECRET_KEY, ...) sets it, below the environment and .env. Read only if the directory exists.
SECRETS_DIR = Path("/run/secrets")


def estimated_entropy_bits(value: str) -> float:
    """A cheap upper bound on a secret's entropy: the lower of two estimates.

    Length times the Shannon entropy of its own characters catches few distinct characters
    ("a" * 32); what zlib cannot squeeze out catches repetition ("abcd" * 12). It cannot prove
    a secret is random, but it refuses what people type by hand.
    """
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    # zlib adds ~8 bytes of framing; what remains is roughly the information in the value.
    compressed_bits = 8 * max(len(zlib.compress(value.encode(), 9)) - 8, 0)
    return min(per_char * len(value), compressed_bits)


class Environment(enum.StrEnum):
    """Where the process runs; production turns on the strict checks."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting of the service. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `LOG_FORMAT=` in a .env means "use the default"
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
        extra="ignore",
        frozen=True,
    )

    ENVIRONMENT: Environment = Environment.DEVELOPMENT
    DEBUG: bool = False
    PROJECT_NAME: str = "fastapi-ledger"
    RELEASE: str = "dev"

    SECRET_KEY: SecretStr = Field(default=SecretStr(DEV_SECRET_KEY), min_length=32)

    JWT_ISSUER: str = "fastapi-ledger"
    JWT_AUDIENCE: str = "fastapi-ledger-api"
    ACCESS_TOKEN_TTL_SECONDS: int = Field(default=900, ge=60, le=3600)
    REFRESH_TOKEN_TTL_SECONDS: int = Field(default=14 * 24 * 3600, ge=3600)
    REFRESH_REUSE_GRACE_SECONDS: int = Field(default=5, ge=0, le=60)
    JWT_LEEWAY_SECONDS: int = Field(default=10, ge=0, le=60)

    ARGON2_TIME_COST: int = Field(default=2, ge=1, le=10)
    ARGON2_MEMORY_KIB: int = Field(default=65536, ge=1024, le=1_048_576)
    ARGON2_PARALLELISM: int = Field(default=1, ge=1, le=16)
    PASSWORD_HASH_CONCURRENCY: int = Field(default=2, ge=1, le=64)
    PASSWORD_HASH_NICE: int = Field(default=10, ge=0, le=19)

    SUPPORTED_CURRENCIES: Annotated[list[str], NoDecode] = ["EUR", "USD", "GBP"]
    IDEMPOTENCY_KEY_TTL_SECONDS: int = Field(default=24 * 3600, ge=60)

    DATABASE_URL: PostgresDsn = PostgresDsn(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/fastapi_ledger"
    )
    # A fixed pool by default (15 connections, none beyond): an overflow connection is closed
    # when it is checked in, inside the request that used it, and that request can be
    # cancelled by its leaving client mid-close (an ERROR from the pool); under a load that
    # comes and goes, each overflow connection is also a new connect with its statements
    # prepared again. The admission gate, not the pool, absorbs bursts.
    DB_POOL_SIZE: int = Field(default=15, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0, le=200)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    DB_STATEMENT_TIMEOUT_MS: int = Field(default=15_000, ge=0)
    DB_ECHO: bool = False

    REDIS_URL: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    REDIS_MAX_CONNECTIONS: int = Field(default=50, ge=1)
    REDIS_SOCKET_TIMEOUT_SECONDS: float = Field(default=0.5, gt=0)
    REDIS_BREAKER_SECONDS: float = Field(default=5.0, ge=0, le=300)

    CACHE_TTL_SECONDS: int = Field(default=300, ge=1, le=86_400)
    # How often every process re-applies invalidations that Redis missed (seconds).
    CACHE_REDRIVE_SECONDS: float = Field(default=1.0, gt=0, le=60)

    HEALTH_CHECK_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0, le=30)
    # A readiness result is reused this long, so a probe flood costs one check (seconds).
    HEALTH_CACHE_SECONDS: float = Field(default=1.0, ge=0, le=30)

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["json", "console"] | None = None

    CORS_ORIGINS: Annotated[list[str], NoDecode] = []
    PROBLEM_TYPE_PREFIX: str = "urn:fastapi-ledger:error:"

    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_DEFAULT: str = "100/minute"
    RATE_LIMIT_LOGIN_PER_IP: str = "10/minute"
    RATE_LIMIT_LOGIN_PER_ACCOUNT: str = "5/minute"
    RATE_LIMIT_REGISTER: str = "5/minute"
    # Password guesses of one account (logins, current-password checks) from every client that
    # has not signed in to it before, together (ADR 0014); known clients are exempt.
    RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: str = "20/hour"
    LOGIN_KNOWN_CLIENT_DAYS: int = Field(default=30, ge=1, le=365)
    # Current-password checks (password change) per signed-in user.
    RATE_LIMIT_PASSWORD_CHECK: str = "5/minute"  # noqa: S105 - a rate, not a password
    # Peers whose X-Forwarded-For is believed (IPs or CIDRs); empty: nobody's.
    TRUSTED_PROXIES: Annotated[list[str], NoDecode] = []

    # Request size and time bounds (app/core/body_limit.py, app/core/http_protocol.py).
    MAX_BODY_BYTES: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    MAX_HEADER_BYTES: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    MAX_HEADER_COUNT: int = Field(default=100, ge=10, le=1000)
    HEADER_READ_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=300)
    BODY_READ_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0, le=600)

    # Admission control (app/core/admission.py): requests running at once, requests waiting
    # for a slot, and how long one may wait before a 503 with Retry-After.
    MAX_CONCURRENT_REQUESTS: int = Field(default=64, ge=1, le=10_000)
    ADMISSION_QUEUE_LIMIT: int = Field(default=1024, ge=0, le=100_000)
    ADMISSION_WAIT_SECONDS: float = Field(default=5.0, gt=0, le=60)

    # Error reports (app/core/sentry.py): off unless a DSN is given. Traces: a share of requests.
    SENTRY_DSN: SecretStr = SecretStr("")
    SENTRY_TRACES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)

    # Background work (app.worker, SPEC §6). A task whose worker died (or overran) is handed
    # to another worker after TASK_REDELIVERY_SECONDS; every task's own timeout is well below.
    TASK_QUEUE: str = "ledger:tasks"
    TASK_REDELIVERY_SECONDS: int = Field(default=60, ge=2, le=3600)
    WORKER_SHUTDOWN_SECONDS: int = Field(default=20, ge=1, le=600)
    OUTBOX_POLL_SECONDS: float = Field(default=1.0, gt=0, le=60)
    # The worker's own /metrics (SPEC §7), on HOST: each worker process serves its counters.
    WORKER_METRICS_PORT: int = Field(default=9000, ge=1, le=65535)
    # The payment provider (app/deposits/provider.py): `fake` (SPEC §6's deterministic rules;
    # refused in production) or `http`, a real one at PSP_BASE_URL. Its webhooks are signed with
    # PSP_WEBHOOK_SECRET (app/deposits/webhooks.py).
    PSP_PROVIDER: Literal["fake", "http"] = "fake"
    PSP_FAKE_LATENCY_MS: int = Field(default=300, ge=0, le=60_000)
    PSP_BASE_URL: str = "https://psp.invalid"
    PSP_API_KEY: SecretStr = SecretStr("")
    PSP_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=60)
    PSP_WEBHOOK_SECRET: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    PSP_WEBHOOK_TOLERANCE_SECONDS: int = Field(default=300, ge=1, le=3600)

    # Receipts (app/core/email.py): `console` logs each email (secrets redacted); `smtp` sends
    # it (Mailpit in compose).
    EMAIL_BACKEND: Literal["console", "smtp"] = "console"
    SMTP_HOST: str = "localhost"
    SMTP_PORT: int = Field(default=1025, ge=1, le=65535)
    SMTP_FROM: str = "ledger <no-reply@example.com>"
    SMTP_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=60)

    # Backups (app/backup.py): pg_dump custom-format files in BACKUP_DIR, the newest BACKUP_KEEP
    # kept; `backup --every` (the compose job) runs one each BACKUP_INTERVAL_SECONDS and serves
    # ledger_backup_last_success_timestamp_seconds on BACKUP_METRICS_PORT.
    BACKUP_DIR: Path = Path("backups")
    BACKUP_KEEP: int = Field(default=7, ge=1, le=1000)
    BACKUP_INTERVAL_SECONDS: int = Field(default=86_400, ge=60, le=7 * 86_400)
    BACKUP_METRICS_PORT: int = Field(default=9102, ge=1, le=65535)

    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)
    # Where `make run` and the tests keep an embedded PostgreSQL / Redis when none answers at
    # the default address (outside production only; app/local_services.py).
    LOCAL_DATA_DIR: Path = Path(".local")
    GRACEFUL_SHUTDOWN_SECONDS: int = Field(default=20, ge=1, le=600)
    DRAIN_SECONDS: float = Field(default=5.0, ge=0, le=120)

    FIRST_ADMIN_EMAIL: str = "admin@example.com"
    FIRST_ADMIN_PASSWORD: SecretStr = SecretStr(DEV_ADMIN_PASSWORD)
    DEMO_USER_EMAIL: str = "demo@example.com"
    DEMO_USER_PASSWORD: SecretStr = SecretStr(DEV_DEMO_PASSWORD)

    @field_validator("CORS_ORIGINS", "SUPPORTED_CURRENCIES", "TRUSTED_PROXIES", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept a comma-separated string as well as a list."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "RATE_LIMIT_DEFAULT",
        "RATE_LIMIT_LOGIN_PER_IP",
        "RATE_LIMIT_LOGIN_PER_ACCOUNT",
        "RATE_LIMIT_REGISTER",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT",
        "RATE_LIMIT_PASSWORD_CHECK",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        """A `limits` expression such as `100/minute` or `10 per second`."""
        try:
            parse_limit(value)
        except ValueError:
            raise ValueError("must look like 100/minute or 10/second") from None
        return value

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """IP addresses or CIDR networks."""
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("SUPPORTED_CURRENCIES")
    @classmethod
    def _iso_4217_codes(cls, value: list[str]) -> list[str]:
        """Three upper-case letters each, at least one."""
        if not value or any(len(c) != 3 or not c.isalpha() or not c.isupper() for c in value):
            raise ValueError("must be a comma-separated list of ISO 4217 codes, e.g. EUR,USD")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _require_asyncpg(cls, value: PostgresDsn) -> PostgresDsn:
        """The data layer is async: the URL must name the asyncpg driver."""
        if value.scheme != "postgresql+asyncpg":
            raise ValueError("must start with postgresql+asyncpg:// (the async driver)")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        """Production never starts with a development secret or debug on."""
        if self.ENVIRONMENT is not Environment.PRODUCTION:
            return self
        problems = []
        secret_key = self.SECRET_KEY.get_secret_value()
        if secret_key in KNOWN_WEAK_SECRETS:
            problems.append("SECRET_KEY is a default or known-weak value")
        elif estimated_entropy_bits(secret_key) < MIN_SECRET_KEY_BITS:
            problems.append(
                "SECRET_KEY is too predictable (repeated or few distinct characters); generate "
                "one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        admin_password = self.FIRST_ADMIN_PASSWORD.get_secret_value()
        if admin_password == DEV_ADMIN_PASSWORD:
            problems.append("FIRST_ADMIN_PASSWORD is the default value")
        elif (
            len(admin_password) < MIN_ADMIN_PASSWORD_LENGTH
            or estimated_entropy_bits(admin_password) < MIN_ADMIN_PASSWORD_BITS
        ):
            problems.append(
                f"FIRST_ADMIN_PASSWORD is too weak: use at least {MIN_ADMIN_PASSWORD_LENGTH} "
                "characters with some variety (a passphrase of several words will do)"
            )
        if self.PSP_PROVIDER == "fake":
            problems.append("PSP_PROVIDER=fake is for tests and the demo: set http")
        elif not self.PSP_API_KEY.get_secret_value():
            problems.append("PSP_API_KEY must be set for PSP_PROVIDER=http")
        webhook_secret = self.PSP_WEBHOOK_SECRET.get_secret_value()
        if webhook_secret in (DEV_WEBHOOK_SECRET, *KNOWN_WEAK_SECRETS):
            problems.append("PSP_WEBHOOK_SECRET is a default or known-weak value")
        if self.DEBUG:
            problems.append("DEBUG must be false")
        if "*" in self.CORS_ORIGINS:
            problems.append("CORS_ORIGINS must not contain '*'")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def log_format(self) -> Literal["json", "console"]:
        """JSON in production and test, readable console in development, unless set."""
        if self.LOG_FORMAT is not None:
            return self.LOG_FORMAT
        return "console" if self.ENVIRONMENT is Environment.DEVELOPMENT else "json"


class ConfigError(SystemExit):
    """Start-up stops with one readable message naming each bad variable."""


def format_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error list into one line per variable, never echoing a value."""
    lines = ["Invalid configuration:"]
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        lines.append(f"  {name}: {item['msg']}")
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """Load and cache the settings; exit with a clear message when they are invalid."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None
