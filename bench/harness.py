"""What the API benchmarks share: a throw-away database, one pinned API process, small helpers.

`suite.py` (`make bench`) and `login_flood.py` import from here (run as scripts, bench/ is on
sys.path). It expects PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and Redis on
127.0.0.1:6379 (database 14). The typical run:

1. `throwaway_database(new_database_name())`: `CREATE DATABASE`, and `DROP ... WITH (FORCE)`
   however the block ends;
2. `migrate(url)`, then `start_server(...)`: one API process (pinned to a CPU with `taskset`
   when asked, waited for on `/health/live`), stopped by `stop_server` (SIGTERM, then kill if
   the graceful shutdown hangs); `run_with_server` does all three around an async load;
3. `build_population(...)`: users, accounts and their funding, made through the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
ADMIN_DATABASE_URL = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"
API = "/api/v1"
HEALTH_PATH = "/health/live"

STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 30.0

EXIT_REQUEST_ERRORS = 1
EXIT_SERVER_FAILED = 2

# Inherited hashing settings that would silently change what is measured: the production
# defaults apply unless --server-env sets them on purpose.
HASHING_ENV_PREFIXES = ("ARGON2_", "PASSWORD_HASH_")
# Limits stay on (they are part of every request's cost) but high enough that the benchmark
# measures hashing and serving, not 429s.
RAISED_RATE_LIMITS = {
    "RATE_LIMIT_DEFAULT": "10000000/minute",
    "RATE_LIMIT_LOGIN_PER_IP": "10000000/minute",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT": "10000000/minute",
    "RATE_LIMIT_REGISTER": "10000000/minute",
    "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "10000000/minute",
    "RATE_LIMIT_PASSWORD_CHECK": "10000000/minute",
}

# The API as production runs it (`python -m app.server`: uvloop, the bounded httptools
# protocol, JSON logs at INFO with the access log), plus what a benchmark must change: every
# client is 127.0.0.1, so the limits are raised (still counted, never refusing); tokens live
# the longest the settings allow, so a long run's tokens do not expire; no drain on stop.
# Nothing else is inherited from the caller's environment or a .env file.
PRODUCTION_SERVER_COMMAND = (str(VENV_BIN / "python"), "-m", "app.server")
PRODUCTION_BENCH_ENV = {
    "ENVIRONMENT": "production",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "ACCESS_TOKEN_TTL_SECONDS": "3600",
    "DRAIN_SECONDS": "0",
    # Production refuses the fake provider; the API never calls the provider (the worker does).
    "PSP_PROVIDER": "http",
    **RAISED_RATE_LIMITS,
}


def production_secrets() -> dict[str, str]:
    """Production refuses the development secrets: fresh random ones for one run."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FIRST_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "PSP_API_KEY": secrets.token_urlsafe(24),
        "PSP_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    }


INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")

T = TypeVar("T")


class BenchFailedError(Exception):
    """The API process did not start, died while being measured, or the set-up failed."""


# --- small helpers -------------------------------------------------------------------------


def progress_logger(name: str) -> Callable[[str], None]:
    """A `log(message)` that prints `[name] message` on stderr, so stdout stays a table or JSON."""

    def log(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    return log


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def kib_to_mb(kib: float) -> float:
    """KiB (as /proc reports them) to MB of 10^6 bytes."""
    return kib * 1024 / 1_000_000


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads of a process, from /proc/<pid>/status."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            values[key] = int(rest.split()[0])
    return values


def read_proc_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU seconds a process has used (all its threads).

    `with_children` adds what its exited, reaped children used (cutime, cstime).
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- command line and process set-up -------------------------------------------------------


def add_server_env_option(parser: argparse.ArgumentParser) -> None:
    """The repeatable `--server-env KEY=VALUE` option."""
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the API process (repeatable)",
    )


def parse_server_env(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, str]:
    """The `--server-env` values as a dict; a malformed item is a usage error."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--server-env expects KEY=VALUE, got {item!r}")
        overrides[key] = value
    return overrides


def choose_cpus(note: str = "") -> tuple[int | None, str]:
    """Pin this process to the second allowed CPU; return the server's CPU and a description."""
    allowed = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(allowed) < 2:
        return None, f"not pinned ({len(allowed)} CPU(s), taskset {shutil.which('taskset')})"
    server_cpu, client_cpu = allowed[0], allowed[1]
    os.sched_setaffinity(0, {client_cpu})
    return server_cpu, f"pinned to CPU {server_cpu}, load generator on CPU {client_cpu}{note}"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The uvloop loop when installed: a cheaper client leaves more of its CPU to measuring."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: raise SystemExit, so `finally` blocks stop the server and drop the DB."""
    raise SystemExit(128 + signum)


# --- database ------------------------------------------------------------------------------


def admin_execute(statement: str) -> None:
    """Run one statement on the maintenance database, outside any transaction."""

    async def run() -> None:
        engine = create_async_engine(ADMIN_DATABASE_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def new_database_name() -> str:
    """A fresh name for a throw-away database: `ledger_bench_<random>`."""
    return f"ledger_bench_{secrets.token_hex(5)}"


def database_url_for(database: str) -> str:
    """The asyncpg URL of a database on the bench's PostgreSQL."""
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextlib.contextmanager
def throwaway_database(database: str, log: Callable[[str], None] | None = None) -> Iterator[str]:
    """Create `database`, yield its URL, drop it (`WITH (FORCE)`) however the block ends."""
    admin_execute(f'CREATE DATABASE "{database}"')
    try:
        yield database_url_for(database)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if log is not None:
            log(f"database {database} dropped")


def migrate(database_url: str) -> None:
    """Build the schema with the real migrations."""
    completed = subprocess.run(  # noqa: S603 - a fixed command
        [str(VENV_BIN / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchFailedError(f"alembic upgrade head failed:\n{completed.stderr[-3000:]}")


# --- server --------------------------------------------------------------------------------


def server_environment(
    database_url: str,
    overrides: Mapping[str, str],
    *,
    stripped_prefixes: tuple[str, ...],
    bench_env: Mapping[str, str],
) -> dict[str, str]:
    """The API's environment: ours minus `stripped_prefixes`, plus `bench_env` and overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(stripped_prefixes)}
    env.update(
        ENVIRONMENT="development",
        LOG_LEVEL="WARNING",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
    )
    env.update(bench_env)
    env.update(overrides)
    return env


def use_in_process(database_url: str, *, log_level: str = "INFO") -> None:
    """Set this process up to import the app and run it in process, as production configures it.

    For the in-process benchmarks (`cpu_per_request.py`, `db_layers.py`, `middleware_cost.py`):
    PRODUCTION_BENCH_ENV with the throw-away database, and the repository on `sys.path`. Call it
    before importing `app` or `bare_app`: both read the environment at import.
    """
    os.environ.update(PRODUCTION_BENCH_ENV)
    os.environ.update(
        DATABASE_URL=database_url, REDIS_URL=REDIS_URL, **production_secrets(), LOG_LEVEL=log_level
    )
    sys.path.insert(0, str(ROOT))


def production_environment(
    database_url: str, port: int, overrides: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment of `python -m app.server` as production runs it (PRODUCTION_BENCH_ENV).

    Only a few process basics are inherited: every setting not named here is the app's
    default, whatever the caller's shell or a .env file says (run it from a directory without
    one: `start_server(..., cwd=...)`).
    """
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        PORT=str(port),
        **production_secrets(),
    )
    env.update(PRODUCTION_BENCH_ENV)
    env.update(overrides)
    return env


def uvicorn_command(port: int) -> list[str]:
    """One uvicorn process serving `app.main:app` on `port`, without access log."""
    return [
        str(VENV_BIN / "python"),
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def server_output_tail(server_log: IO[str], chars: int = 6000) -> str:
    """The end of what the server logged, to explain a failure."""
    server_log.seek(0)
    return f"--- server output (tail) ---\n{server_log.read()[-chars:]}"


def start_server(
    command: Sequence[str],
    port: int,
    env: dict[str, str],
    cpu: int | None,
    log_file: IO[str],
    *,
    ready_path: str = HEALTH_PATH,
    cwd: Path = ROOT,
) -> subprocess.Popen[str]:
    """Start a server with `command` (pinned to `cpu` when given) and wait for `ready_path`."""
    argv = list(command)
    taskset = shutil.which("taskset")
    if cpu is not None and taskset is not None:
        argv = [taskset, "-c", str(cpu), *argv]  # taskset execs: the pid stays the same
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        argv, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchFailedError(f"server exited early with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(process)
    raise BenchFailedError(f"server not live after {STARTUP_TIMEOUT_SECONDS:.0f}s")


def stop_server(process: subprocess.Popen[str]) -> int | None:
    """SIGTERM, wait for the graceful shutdown, kill if it hangs; return the exit code."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def run_with_server(
    database_url: str,
    env: dict[str, str],
    cpu: int | None,
    server_log: IO[str],
    load: Callable[[int, int], Coroutine[Any, Any, T]],
    *,
    log: Callable[[str], None],
    command: Callable[[int], Sequence[str]] = uvicorn_command,
) -> T:
    """Migrate, start the server, run `load(port, server_pid)` on an event loop, stop it."""
    migrate(database_url)
    port = free_port()
    process = start_server(command(port), port, env, cpu, server_log)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            outcome = runner.run(load(port, process.pid))
        if process.poll() is not None:
            raise BenchFailedError(f"server died during the run ({process.returncode})")
    finally:
        code = stop_server(process)
        log(f"server stopped (exit code {code})")
    return outcome


# --- set-up through the API ----------------------------------------------------------------


async def sign_up(
    client: httpx.AsyncClient, base_url: str, label: str = "flood"
) -> tuple[str, str, str]:
    """Register a fresh user and sign in; return its email, password and access token."""
    email = f"{label}-{secrets.token_hex(6)}@example.com"
    password = "Lf9!" + secrets.token_urlsafe(18)
    registered = await client.post(
        f"{base_url}{API}/auth/register",
        json={"email": email, "password": password, "full_name": f"Bench {label}"},
    )
    if registered.status_code != 201:
        raise BenchFailedError(f"register: HTTP {registered.status_code} {registered.text}")
    token = await client.post(
        f"{base_url}{API}/auth/login", data={"username": email, "password": password}
    )
    if token.status_code != 200:
        raise BenchFailedError(f"login: HTTP {token.status_code} {token.text}")
    return email, password, str(token.json()["access_token"])


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    """The JSON body of a set-up response, or a clear failure."""
    if response.status_code != status:
        raise BenchFailedError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


async def open_account(
    client: httpx.AsyncClient, base_url: str, token: str, name: str, currency: str = "EUR"
) -> str:
    """Open an account; return its id."""
    response = await client.post(
        f"{base_url}{API}/accounts",
        json={"currency": currency, "name": name},
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(expect(response, 201, f"open account {name}")["id"])


async def promote_to_admin(database_url: str, email: str) -> None:
    """Make a user an admin, straight in the database (the API has no such endpoint)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(
                text("UPDATE users SET role = 'admin' WHERE email = :email"), {"email": email}
            )
            if result.rowcount != 1:
                raise BenchFailedError(f"could not promote {email} to admin")
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Payer:
    """A user who pays: its access token and its two accounts."""

    token: str
    accounts: tuple[str, str]


@dataclass(frozen=True)
class Population:
    """Who pays whom: payers (two funded accounts each), then every account, payers' first."""

    payers: list[Payer]
    accounts: list[str]
    funded_total: int


async def build_population(
    client: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    *,
    payers: int,
    payees: int,
    funding: int,
) -> Population:
    """Register an admin, `payers` users with two EUR accounts of `funding` each, `payees`."""
    labels = ["admin"] + [f"payer{i}" for i in range(payers)] + [f"payee{i}" for i in range(payees)]
    users = await asyncio.gather(*(sign_up(client, base_url, label) for label in labels))
    admin_email, _, admin_token = users[0]
    # The role is read per request: the token issued before the promotion works as admin.
    await promote_to_admin(database_url, admin_email)
    payer_list: list[Payer] = []
    for index, (_, _, token) in enumerate(users[1 : payers + 1]):
        first = await open_account(client, base_url, token, f"payer{index} main")
        second = await open_account(client, base_url, token, f"payer{index} savings")
        payer_list.append(Payer(token=token, accounts=(first, second)))
    payee_accounts = [
        await open_account(client, base_url, token, f"payee{index}")
        for index, (_, _, token) in enumerate(users[payers + 1 :])
    ]
    for payer in payer_list:
        for account_id in payer.accounts:
            response = await client.post(
                f"{base_url}{API}/admin/accounts/{account_id}/adjustments",
                json={"amount": funding, "reason": "bench funding"},
                headers={
                    "Authorization": f"Bearer {admin_token}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
            expect(response, 201, "fund account")
    return Population(
        payers=payer_list,
        accounts=[a for p in payer_list for a in p.accounts] + payee_accounts,
        funded_total=funding * 2 * payers,
    )


def ledger_verify(env: Mapping[str, str], cwd: Path = ROOT) -> tuple[int, str]:
    """`python -m app.cli ledger verify` with the server's environment: exit code and output."""
    completed = subprocess.run(  # noqa: S603 - a fixed command
        [str(VENV_BIN / "python"), "-m", "app.cli", "ledger", "verify"],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.returncode, (completed.stdout + completed.stderr).strip()[-2000:]
