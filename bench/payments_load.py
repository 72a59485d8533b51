"""Measure SPEC §4 `POST /payments`: payments per second and p99 against one real API process.

Run from the repository root, with PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and
Redis (127.0.0.1:6379, database 14) running:

    .venv/bin/python bench/payments_load.py [--seconds N] [--concurrency 16,64] [--payers 8]
        [--payees 4] [--pgbench-seconds 10] [--pgbench-clients 16] [--no-pgbench]
        [--server-env KEY=VALUE ...] [--seed N] [--json]

What it does:

1. creates a throw-away database `ledger_bench_<random>`, builds it with `alembic upgrade head`
   and drops it at the end (`WITH (FORCE)`), also when something fails;
2. starts one uvicorn process with the production defaults (every inherited `ARGON2_*`,
   `PASSWORD_HASH_*`, `DB_*`, `IDEMPOTENCY_*`, `LEDGER_*` and `RATE_LIMIT_*` variable is
   removed; `--server-env` sets them on purpose), pinned to one CPU with `taskset` while this
   load generator runs pinned to another. The rate limits are raised, not disabled: all the
   load comes from one address, and the limiter's cost belongs in the measurement;
3. registers an admin (promoted with SQL), K payers with two EUR accounts each, funded by admin
   adjustments, and P payees with one account each;
4. for each concurrency C: phase `health-C`, C clients looping on `GET /health/live` (the bare
   endpoint, the SPEC's reference), then phase `payments-C`, C clients looping on
   `POST /api/v1/payments` with a fresh `Idempotency-Key` each. Each phase: 3 s warm-up, then
   the measured window. A client takes the next payer in turn and pays 1-500 cents from one of
   its accounts to any other account; a quarter of the payments move money between the payer's
   own two accounts in a random direction, so opposite transfers on one pair exercise the
   lock ordering;
5. when `pgbench` is installed, right after the payments phase at pgbench's concurrency and
   while the API sits idle: a script doing one payment's SQL (lock two accounts in id order,
   two balance updates, a ledger transaction, two entries, an idempotency row, commit) on the
   same accounts, for the SPEC's ratio. What it moves is added to the expected balances;
6. stops the server, then checks the money: `python -m app.cli ledger verify`, every account
   sums to zero with the system account, the users' total did not move, every 201 is one
   succeeded payment, and every account holds exactly what the 201 responses the clients saw
   (and pgbench) say it should.

The load generator is a minimal HTTP/1.1 keep-alive client, one connection and one request in
flight per client, as `wrk` does; it needs about 0.05 ms of CPU per request. httpx is used for
the set-up only: on this machine its pool cost ~1.2 ms of client CPU per request at 16
connections and ~7 ms at 64 (encode/httpx#3215), so with it this process, not the server,
would be measured.

It reports, per phase, successful requests per second (and the p10/p90 of the per-second
rates), latency p50/p99/max, CPU of the server, of PostgreSQL, of this process and of the rest
of the machine (other people's jobs skew a shared machine: the report warns), the server's
peak RSS, and what the server's database connections were doing (sampled from
`pg_stat_activity` every 200 ms: open, active, idle in transaction, waiting on a lock). Ratios:
payments/s ÷ health/s at each concurrency, and payments/s ÷ pgbench tps at pgbench's
concurrency (SPEC target ≥ 0.5). Targets are reported, never enforced: the exit code is 0
unless the server fails, a request errors out, or a money check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
from harness import (
    API,
    EXIT_REQUEST_ERRORS,
    EXIT_SERVER_FAILED,
    HEALTH_PATH,
    PG_HOST,
    PG_PORT,
    PG_USER,
    ROOT,
    VENV_BIN,
    BenchFailedError,
    add_server_env_option,
    choose_cpus,
    database_url_for,
    exit_on_sigterm,
    kib_to_mb,
    new_database_name,
    parse_server_env,
    percentile,
    progress_logger,
    read_proc_cpu_seconds,
    read_proc_status,
    run_with_server,
    server_environment,
    server_output_tail,
    throwaway_database,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

PAYMENTS_PATH = f"{API}/payments"
# The API's `application_name` (Settings.PROJECT_NAME), to find its connections.
SERVER_APPLICATION_NAME = "fastapi-ledger"

WARMUP_SECONDS = 3.0
IDLE_CHECK_SECONDS = 1.0
# CPU busy before the run (% of one core) above which the report warns: someone else's load.
BUSY_WARNING_PERCENT = 20.0
CONTAMINATED_MARK = "(!)"
SAMPLE_INTERVAL_SECONDS = 0.2
PAUSE_BETWEEN_PHASES_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 30.0
ERROR_BACKOFF_SECONDS = 0.05

CURRENCY = "EUR"
# 100 million EUR per payer account: no payment ever fails for funds.
FUNDING_PER_ACCOUNT = 10_000_000_000
MAX_PAYMENT = 500
OWN_ACCOUNTS_SHARE = 0.25

TARGET_PGBENCH_RATIO = 0.5

# Inherited settings that would silently change what is measured: production defaults apply
# unless --server-env sets them on purpose.
STRIPPED_ENV_PREFIXES = (
    "ARGON2_",
    "PASSWORD_HASH_",
    "DB_",
    "IDEMPOTENCY_",
    "LEDGER_",
    "RATE_LIMIT_",
)
# Every request comes from 127.0.0.1, so the per-IP limits would answer 429 within a second.
# Raised rather than disabled: the limiter still counts every request (its Redis round trips
# are part of what SPEC §4 measures) but never refuses. Harmless where no limiter exists.
BENCH_SERVER_ENV = {
    "RATE_LIMIT_DEFAULT": "100000000/minute",
    "RATE_LIMIT_REGISTER": "100000/minute",
    "RATE_LIMIT_LOGIN_PER_IP": "100000/minute",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT": "100000/minute",
}

# What can go wrong on the wire (TimeoutError and ConnectionError are OSErrors; a malformed
# response raises ValueError).
TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)

# Warnings the API logs that explain a run: deadlock or serialization retries of a posting,
# crashes, and the rate limiter losing Redis.
SERVER_LOG_EVENTS = ("ledger_post_retry", "unhandled_exception", "rate_limit_storage_unavailable")

EXIT_MONEY_CHECK_FAILED = 3

ACTIVITY_SQL = text(
    """
    SELECT count(*),
           count(*) FILTER (WHERE state = 'active'),
           count(*) FILTER (WHERE state = 'idle in transaction'),
           count(*) FILTER (WHERE wait_event_type = 'Lock')
    FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = :application_name
    """
)
ACTIVITY_FIELDS = ("db_conns", "db_active", "db_idle_in_tx", "db_lock_wait")

# One payment's SQL, as SPEC §4 describes the reference, on the HTTP phases' accounts: from a
# payer's account (numbered first) to any other. The lookup before BEGIN stands in for the ids
# a client sends; pgbench variables cannot index a list of UUIDs.
PGBENCH_SCRIPT = """\
\\set a random(1, :nsources)
\\set b 1 + (:a + random(0, :naccounts - 2)) % :naccounts
\\set amount random(1, 500)
SELECT s.id AS src, s.user_id AS owner, d.id AS dst
  FROM bench_accounts s, bench_accounts d WHERE s.n = :a AND d.n = :b \\gset
BEGIN;
SELECT id, balance FROM accounts WHERE id IN (:src::uuid, :dst::uuid) ORDER BY id FOR UPDATE;
UPDATE accounts SET balance = balance - :amount::bigint, updated_at = now()
  WHERE id = :src::uuid;
UPDATE accounts SET balance = balance + :amount::bigint, updated_at = now()
  WHERE id = :dst::uuid;
INSERT INTO ledger_transactions (kind) VALUES ('payment') RETURNING id AS tx \\gset
INSERT INTO ledger_entries (transaction_id, account_id, amount)
  VALUES (:tx::uuid, :src::uuid, -:amount::bigint), (:tx::uuid, :dst::uuid, :amount::bigint);
INSERT INTO idempotency_keys
  (user_id, endpoint, key, fingerprint, response_status, response_body, expires_at)
  VALUES (:owner::uuid, 'POST /api/v1/payments', gen_random_uuid()::text, md5(random()::text),
          201, jsonb_build_object('source_account_id', :src::uuid,
                                  'destination_account_id', :dst::uuid,
                                  'amount', :amount::bigint, 'status', 'succeeded'),
          now() + interval '1 day');
COMMIT;
"""


@dataclass(frozen=True)
class Call:
    """One request ready to send, the status that means success, and what success implies."""

    raw: bytes
    expected_status: int
    on_success: Callable[[], None] | None = None


@dataclass
class PhaseResult:
    """Everything one phase measured (latencies in seconds, memory in KiB)."""

    name: str
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    db_samples: list[tuple[int, ...]] = field(default_factory=list)
    max_rss_kib: int = 0
    server_cpu_percent: float = 0.0
    postgres_cpu_percent: float = 0.0
    client_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0


@dataclass(frozen=True)
class Payer:
    """A user who pays, its token and its two accounts."""

    token: str
    accounts: tuple[str, str]


@dataclass
class Population:
    """Who pays whom: the payers, every account, and the balances the clients expect."""

    payers: list[Payer]
    accounts: list[str]
    expected: dict[str, int]
    funded_total: int
    payments_ok: int = 0
    payments_unknown: int = 0

    def record(self, source: str, destination: str, amount: int) -> None:
        """A 201: the money moved."""
        self.expected[source] -= amount
        self.expected[destination] += amount
        self.payments_ok += 1


@dataclass
class PgbenchResult:
    """One pgbench run: its rate, mean latency and failures, or why it did not run."""

    skipped: str | None = None
    tps: float | None = None
    latency_ms: float | None = None
    failed: int | None = None
    transactions: int | None = None
    postgres_cpu_percent: float | None = None
    pgbench_cpu_percent: float | None = None
    other_cpu_percent: float | None = None
    output_tail: str = ""


log = progress_logger("payments_load")


# --- CPU accounting ------------------------------------------------------------------------


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of every `postgres` process on this machine, by pid (unreadable: skipped).

    Backends that exited (pgbench's, at its end) count through the postmaster's children time.
    """
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (entry / "comm").read_text().strip() == "postgres":
                seconds[int(entry.name)] = read_proc_cpu_seconds(
                    int(entry.name), with_children=True
                )
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds every CPU of the machine has spent not idle since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal_and_guests = sum(fields[7:])  # steal, guest, guest_nice: not this machine's work
    return (sum(fields) - idle - steal_and_guests) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots (a process born in between counts in full)."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU seconds of everyone a phase's CPU columns tell apart."""

    server: float
    postgres: dict[int, float]
    client: float
    children: float
    machine: float


def cpu_snapshot(server_pid: int) -> CpuSnapshot:
    """CPU used so far by the API, PostgreSQL, this process, its finished children, everyone."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        server=read_proc_cpu_seconds(server_pid),
        postgres=postgres_cpu_seconds(),
        client=time.process_time(),
        children=children.ru_utime + children.ru_stime,
        machine=machine_busy_seconds(),
    )


def cpu_shares(before: CpuSnapshot, after: CpuSnapshot, seconds: float) -> dict[str, float]:
    """Each one's CPU between two snapshots, in % of one core; `other` is the rest."""
    shares = {
        "server": after.server - before.server,
        "postgres": cpu_delta(before.postgres, after.postgres),
        "client": after.client - before.client,
        "children": after.children - before.children,
    }
    # Whatever else ran (kernel threads, Redis, other people's jobs): on a shared machine this
    # says whether the numbers can be trusted.
    shares["other"] = max(0.0, after.machine - before.machine - sum(shares.values()))
    return {name: 100 * used / seconds for name, used in shares.items()}


# --- a minimal HTTP/1.1 client -------------------------------------------------------------


def build_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive is HTTP/1.1's default)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_response_head(head: bytes) -> tuple[int, int, bool, bool]:
    """Status, Content-Length, chunked?, and whether the server will close the connection."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    return status, length, chunked, close


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (uvicorn sends one only for streaming responses; kept for safety)."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])


class HttpConnection:
    """One keep-alive connection with one request in flight at a time, reopened after errors."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; return the status and the body."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        try:
            writer.write(raw)
            status, length, chunked, close = parse_response_head(
                await reader.readuntil(b"\r\n\r\n")
            )
            body = await (read_chunked(reader) if chunked else reader.readexactly(length))
        except BaseException:
            await self.close()  # the stream is in an unknown state: never reuse it
            raise
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        """Close the connection, if open."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# --- database and server -------------------------------------------------------------------


def payments_server_environment(database_url: str, overrides: dict[str, str]) -> dict[str, str]:
    """The API's environment: ours minus tuning settings, plus the bench's and --server-env."""
    return server_environment(
        database_url,
        overrides,
        stripped_prefixes=STRIPPED_ENV_PREFIXES,
        bench_env=BENCH_SERVER_ENV,
    )


def server_log_counts(server_log: IO[str]) -> dict[str, int]:
    """How often the server logged the events worth knowing about (it logs at WARNING)."""
    server_log.seek(0)
    lines = server_log.read().splitlines()
    counts = {event: sum(event in line for line in lines) for event in SERVER_LOG_EVENTS}
    counts["lines"] = len(lines)
    return counts


def ledger_verify(database_url: str) -> tuple[int, str]:
    """`python -m app.cli ledger verify` on the bench database: exit code and its output."""
    env = payments_server_environment(database_url, {})
    completed = subprocess.run(  # noqa: S603 - a fixed command
        [str(VENV_BIN / "python"), "-m", "app.cli", "ledger", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (completed.stdout + completed.stderr).strip()
    return completed.returncode, output[-2000:]


# --- set-up through the API ----------------------------------------------------------------


def expect(response: httpx.Response, status: int, what: str) -> dict[str, object]:
    """The JSON body of a set-up response, or a clear failure."""
    if response.status_code != status:
        raise BenchFailedError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    body: dict[str, object] = response.json()
    return body


async def sign_up(client: httpx.AsyncClient, label: str) -> tuple[str, str]:
    """Register a fresh user and sign in; return its email and access token."""
    email = f"{label}-{secrets.token_hex(4)}@example.com"
    password = "Pl9!" + secrets.token_urlsafe(18)
    registered = await client.post(
        f"{API}/auth/register",
        json={"email": email, "password": password, "full_name": f"Bench {label}"},
    )
    expect(registered, 201, f"register {label}")
    token = await client.post(f"{API}/auth/login", data={"username": email, "password": password})
    return email, str(expect(token, 200, f"login {label}")["access_token"])


async def open_account(client: httpx.AsyncClient, token: str, name: str) -> str:
    """Open an EUR account; return its id."""
    response = await client.post(
        f"{API}/accounts",
        json={"currency": CURRENCY, "name": name},
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(expect(response, 201, f"open account {name}")["id"])


async def set_role_admin(database_url: str, email: str) -> None:
    """Promote a user to admin, straight in the database (the API has no such endpoint)."""
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


async def read_balances(engine: AsyncEngine) -> tuple[dict[str, int], int]:
    """Every user account's balance, and the sum of the system accounts."""
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, kind, balance FROM accounts"))).all()
    users = {str(row[0]): int(row[2]) for row in rows if row[1] == "user"}
    system = sum(int(row[2]) for row in rows if row[1] != "user")
    return users, system


async def build_population(
    client: httpx.AsyncClient, database_url: str, payers: int, payees: int
) -> Population:
    """Register the admin, payers and payees, open and fund the accounts."""
    log(f"set-up: registering 1 admin, {payers} payers, {payees} payees (Argon2id: a few s)")
    labels = ["admin"] + [f"payer{i}" for i in range(payers)] + [f"payee{i}" for i in range(payees)]
    users = await asyncio.gather(*(sign_up(client, label) for label in labels))
    admin_email = users[0][0]
    await set_role_admin(database_url, admin_email)
    # The role is read per request, so the token issued before the promotion works as admin.
    admin_token = users[0][1]
    payer_list: list[Payer] = []
    for index, (_, token) in enumerate(users[1 : payers + 1]):
        first = await open_account(client, token, f"payer{index} main")
        second = await open_account(client, token, f"payer{index} savings")
        payer_list.append(Payer(token=token, accounts=(first, second)))
    payee_accounts = [
        await open_account(client, token, f"payee{index}")
        for index, (_, token) in enumerate(users[payers + 1 :])
    ]
    for payer in payer_list:
        for account_id in payer.accounts:
            response = await client.post(
                f"{API}/admin/accounts/{account_id}/adjustments",
                json={"amount": FUNDING_PER_ACCOUNT, "reason": "payments_load funding"},
                headers={
                    "Authorization": f"Bearer {admin_token}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
            expect(response, 201, "fund account")
    engine = create_async_engine(database_url)
    try:
        balances, _ = await read_balances(engine)
    finally:
        await engine.dispose()
    accounts = [a for p in payer_list for a in p.accounts] + payee_accounts
    return Population(
        payers=payer_list,
        accounts=accounts,
        expected=balances,
        funded_total=sum(balances.values()),
    )


# --- load ----------------------------------------------------------------------------------


def health_calls(host: str) -> Callable[[], Call]:
    """The bare baseline: the same `GET /health/live` every time."""
    call = Call(raw=build_request("GET", HEALTH_PATH, host, {}, b""), expected_status=200)
    return lambda: call


def payment_calls(host: str, population: Population, rng: random.Random) -> Callable[[], Call]:
    """Payments from the payers in turn, each with a fresh Idempotency-Key."""
    turn = itertools.count()
    others = {a: [b for b in population.accounts if b != a] for a in population.accounts}

    def next_call() -> Call:
        payer = population.payers[next(turn) % len(population.payers)]
        if rng.random() < OWN_ACCOUNTS_SHARE:
            source, destination = rng.sample(payer.accounts, 2)
        else:
            source = rng.choice(payer.accounts)
            destination = rng.choice(others[source])
        amount = rng.randint(1, MAX_PAYMENT)
        body = json.dumps(
            {
                "source_account_id": source,
                "destination_account_id": destination,
                "amount": amount,
                "currency": CURRENCY,
                "description": "payments_load",
            }
        ).encode()
        headers = {
            "Authorization": f"Bearer {payer.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        return Call(
            raw=build_request("POST", PAYMENTS_PATH, host, headers, body),
            expected_status=201,
            on_success=lambda: population.record(source, destination, amount),
        )

    return next_call


async def run_phase(
    *,
    name: str,
    host: str,
    port: int,
    server_pid: int,
    database_url: str,
    concurrency: int,
    seconds: float,
    next_call: Callable[[], Call],
    on_unknown: Callable[[], None] | None = None,
) -> PhaseResult:
    """Warm up, then measure `seconds` of `concurrency` clients looping on `next_call`."""
    result = PhaseResult(name=name, concurrency=concurrency, seconds=seconds)
    result.per_second = [0] * max(1, int(seconds))
    window_start = time.perf_counter() + WARMUP_SECONDS
    window_end = window_start + seconds

    async def client() -> None:
        connection = HttpConnection("127.0.0.1", port)
        try:
            while (started := time.perf_counter()) < window_end:
                call = next_call()
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                        status, body = await connection.request(call.raw)
                except TRANSPORT_ERRORS as error:
                    result.errors[type(error).__name__] += 1
                    if call.on_success is not None and on_unknown is not None:
                        on_unknown()  # it may or may not have been posted
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                    continue
                finished = time.perf_counter()
                if status == call.expected_status:
                    if call.on_success is not None:
                        call.on_success()
                else:
                    label = f"HTTP {status}"
                    result.errors[label] += 1
                    result.error_samples.setdefault(label, body[:300].decode(errors="replace"))
                if window_start <= finished < window_end:
                    result.statuses[status] += 1
                    if status == call.expected_status:
                        result.latencies.append(finished - started)
                        second = int(finished - window_start)
                        if second < len(result.per_second):
                            result.per_second[second] += 1
        finally:
            await connection.close()

    async def sample(stop: asyncio.Event) -> None:
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT", pool_size=1)
        try:
            async with engine.connect() as connection:
                while not stop.is_set():
                    await sample_once(connection)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL_SECONDS)
        finally:
            await engine.dispose()

    async def sample_once(connection: AsyncConnection) -> None:
        with contextlib.suppress(OSError, ValueError):
            result.max_rss_kib = max(
                result.max_rss_kib, read_proc_status(server_pid).get("VmRSS", 0)
            )
        if window_start <= time.perf_counter() < window_end:
            # AUTOCOMMIT: each sample is its own transaction, so pg_stat_activity is fresh.
            row = (
                await connection.execute(
                    ACTIVITY_SQL, {"application_name": SERVER_APPLICATION_NAME}
                )
            ).one()
            result.db_samples.append(tuple(int(value) for value in row))

    async def measure_cpu() -> None:
        await asyncio.sleep(window_start - time.perf_counter())
        before = cpu_snapshot(server_pid)
        await asyncio.sleep(window_end - time.perf_counter())
        shares = cpu_shares(before, cpu_snapshot(server_pid), seconds)
        result.server_cpu_percent = shares["server"]
        result.client_cpu_percent = shares["client"]
        result.postgres_cpu_percent = shares["postgres"]
        result.other_cpu_percent = shares["other"] + shares["children"]

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(stop))
    try:
        await asyncio.gather(measure_cpu(), *(client() for _ in range(concurrency)))
    finally:
        stop.set()
        await sampler
    return result


async def measure(
    args: argparse.Namespace, port: int, server_pid: int, database: str
) -> tuple[list[PhaseResult], Population, PgbenchResult]:
    """Set up, run each concurrency's health and payment phases, and pgbench in between."""
    database_url = database_url_for(database)
    host = f"127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=f"http://{host}", timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        population = await build_population(client, database_url, args.payers, args.payees)

    def unknown() -> None:
        population.payments_unknown += 1

    async def pgbench() -> PgbenchResult:
        # Right after the payments phase it is compared with, while the API sits idle.
        log(f"pgbench: {args.pgbench_clients} clients, {args.pgbench_seconds:.0f}s")
        result = await run_pgbench(
            database,
            database_url,
            population,
            clients=args.pgbench_clients,
            seconds=args.pgbench_seconds,
            server_pid=server_pid,
        )
        await asyncio.sleep(PAUSE_BETWEEN_PHASES_SECONDS)
        return result

    reference = PgbenchResult(skipped="--no-pgbench")
    rng = random.Random(args.seed)  # noqa: S311 - load shape, not security
    workloads = (("health", health_calls(host)), ("payments", payment_calls(host, population, rng)))
    phases: list[PhaseResult] = []
    for concurrency in args.concurrency:
        for kind, calls in workloads:
            name = f"{kind}-{concurrency}"
            log(f"phase {name}: {WARMUP_SECONDS:.0f}s warm-up + {args.seconds:.0f}s")
            phases.append(
                await run_phase(
                    name=name,
                    host=host,
                    port=port,
                    server_pid=server_pid,
                    database_url=database_url,
                    concurrency=concurrency,
                    seconds=args.seconds,
                    next_call=calls,
                    on_unknown=unknown,
                )
            )
            await asyncio.sleep(PAUSE_BETWEEN_PHASES_SECONDS)
        if concurrency == args.pgbench_clients and not args.no_pgbench:
            reference = await pgbench()
    if args.pgbench_clients not in args.concurrency and not args.no_pgbench:
        reference = await pgbench()
    return phases, population, reference


# --- money checks and pgbench --------------------------------------------------------------


async def money_checks(database_url: str, population: Population) -> dict[str, object]:
    """Conservation, and every account against what the clients' 201 responses imply."""
    engine = create_async_engine(database_url)
    try:
        balances, system = await read_balances(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT status, count(*) FROM payments GROUP BY status")
            )
            statuses: dict[str, int] = {str(row[0]): int(row[1]) for row in rows}
            linked, unlinked = (
                await connection.execute(
                    text(
                        "SELECT count(p.id), count(*) - count(p.id) FROM ledger_transactions t "
                        "LEFT JOIN payments p ON p.ledger_transaction_id = t.id "
                        "WHERE t.kind = 'payment'"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    users_total = sum(balances.values())
    mismatched = [
        account
        for account, balance in balances.items()
        if balance != population.expected.get(account, 0)
    ]
    succeeded = int(statuses.get("succeeded", 0))
    return {
        "users_total": users_total,
        "system_total": system,
        "funded_total": population.funded_total,
        "sum_is_zero": users_total + system == 0,
        "users_total_unchanged": users_total == population.funded_total,
        "payments_201_seen": population.payments_ok,
        "payments_outcome_unknown": population.payments_unknown,
        "payments_succeeded_in_db": succeeded,
        "payments_failed_in_db": int(statuses.get("failed", 0)),
        "ledger_payment_transactions": int(linked),
        # pgbench's transactions: ledger rows without a payment row; nothing else writes them.
        "ledger_transactions_without_payment": int(unlinked),
        "accounts_checked": len(balances),
        "accounts_mismatched": len(mismatched),
        "every_201_accounted_for": (
            not mismatched and succeeded == population.payments_ok and int(linked) == succeeded
        )
        if population.payments_unknown == 0
        else None,
    }


def money_ok(checks: dict[str, object]) -> bool:
    """All money checks hold (an unknown outcome leaves the exact check undecided, not failed)."""
    return (
        checks["sum_is_zero"] is True
        and checks["users_total_unchanged"] is True
        and checks["every_201_accounted_for"] is not False
    )


async def run_pgbench(
    database: str,
    database_url: str,
    population: Population,
    *,
    clients: int,
    seconds: float,
    server_pid: int,
) -> PgbenchResult:
    """One payment's SQL at `clients` concurrency for `seconds`, on the bench's accounts.

    Runs while the API sits idle. What it moves is added to the balances the clients expect,
    so the final check still covers every account.
    """
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return PgbenchResult(
            skipped="pgbench not installed (Debian: apt-get install postgresql-client or "
            "postgresql-contrib)"
        )
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE bench_accounts (n int PRIMARY KEY, id uuid, user_id uuid)")
            )
            await connection.execute(
                text(
                    "INSERT INTO bench_accounts SELECT o.n, a.id, a.user_id "
                    "FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS o(id, n) "
                    "JOIN accounts a ON a.id = o.id"
                ),
                {"ids": [uuid.UUID(account) for account in population.accounts]},
            )
        before, _ = await read_balances(engine)
        sources = 2 * len(population.payers)  # population.accounts lists the payers' first
        cpu_before = cpu_snapshot(server_pid)
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
            script.write(PGBENCH_SCRIPT)
            script.flush()
            # Inherits this process's CPU affinity: it runs where the HTTP load generator ran.
            process = await asyncio.create_subprocess_exec(
                pgbench,
                *("-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER),
                "-n",  # no vacuum of pgbench's own tables: there are none
                *("-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(round(seconds))),
                *("-D", f"nsources={sources}", "-D", f"naccounts={len(population.accounts)}"),
                *("-f", script.name, database),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            stdout, _ = await process.communicate()
        cpu = cpu_shares(cpu_before, cpu_snapshot(server_pid), seconds)
        after, _ = await read_balances(engine)
    finally:
        await engine.dispose()
    for account, balance in after.items():
        population.expected[account] = population.expected.get(account, 0) + (
            balance - before.get(account, 0)
        )
    output = stdout.decode(errors="replace")
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", output, re.MULTILINE)
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.MULTILINE)
    done = re.search(r"^number of transactions actually processed: (\d+)", output, re.MULTILINE)
    if process.returncode != 0 or tps is None:
        return PgbenchResult(
            skipped=f"pgbench failed (exit {process.returncode})", output_tail=output[-2000:]
        )
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else None,
        failed=int(failed.group(1)) if failed else None,
        transactions=int(done.group(1)) if done else None,
        postgres_cpu_percent=round(cpu["postgres"], 1),
        pgbench_cpu_percent=round(cpu["children"], 1),
        other_cpu_percent=round(cpu["other"], 1),
    )


# --- report --------------------------------------------------------------------------------


def phase_summary(phase: PhaseResult) -> dict[str, object]:
    """One phase as plain numbers (milliseconds, MB, req/s)."""

    def ms(q: float) -> float | None:
        return round(percentile(phase.latencies, q) * 1000, 2) if phase.latencies else None

    def mean(index: int) -> float | None:
        if not phase.db_samples:
            return None
        return round(sum(sample[index] for sample in phase.db_samples) / len(phase.db_samples), 1)

    rates = [float(count) for count in phase.per_second]
    summary: dict[str, object] = {
        "concurrency": phase.concurrency,
        "requests": len(phase.latencies),
        "rps": round(len(phase.latencies) / phase.seconds, 1),
        "rps_p10": round(percentile(rates, 10), 1),
        "rps_p90": round(percentile(rates, 90), 1),
        "p50_ms": ms(50),
        "p99_ms": ms(99),
        "max_ms": ms(100),
        "server_cpu_percent": round(phase.server_cpu_percent, 1),
        "postgres_cpu_percent": round(phase.postgres_cpu_percent, 1),
        "client_cpu_percent": round(phase.client_cpu_percent, 1),
        "other_cpu_percent": round(phase.other_cpu_percent, 1),
        "max_rss_mb": round(kib_to_mb(phase.max_rss_kib), 1),
        "statuses": {str(code): count for code, count in sorted(phase.statuses.items())},
        "errors": dict(phase.errors),
        "error_samples": phase.error_samples,
    }
    for index, key in enumerate(ACTIVITY_FIELDS):
        summary[f"{key}_mean"] = mean(index)
    summary["db_conns_max"] = max((s[0] for s in phase.db_samples), default=None)
    return summary


def ratios(
    summaries: dict[str, dict[str, object]], pgbench: PgbenchResult, pgbench_clients: int
) -> dict[str, object]:
    """payments/s ÷ health/s per concurrency, and payments/s ÷ pgbench tps."""

    def rps(name: str) -> float | None:
        value = summaries.get(name, {}).get("rps")
        return float(value) if isinstance(value, int | float) and value > 0 else None

    out: dict[str, object] = {}
    for name in summaries:
        if name.startswith("payments-"):
            concurrency = name.removeprefix("payments-")
            pay, bare = rps(name), rps(f"health-{concurrency}")
            out[f"payments_over_health_{concurrency}"] = (
                round(pay / bare, 3) if pay and bare else None
            )
    pay = rps(f"payments-{pgbench_clients}")
    value = round(pay / pgbench.tps, 3) if pay and pgbench.tps else None
    out["payments_over_pgbench"] = value
    out["payments_over_pgbench_ok"] = None if value is None else value >= TARGET_PGBENCH_RATIO
    return out


def machine_context(database_url: str) -> dict[str, object]:
    """Date, CPU, commit and versions: an absolute number means nothing without them."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = shutil.which("git")
    commit = "unknown"
    if git is not None:
        head = subprocess.run(  # noqa: S603 - a fixed command
            [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        # What runs is app/ and migrations/ as they are on disk: in a shared work tree they can
        # differ from HEAD, so uncommitted changes there get a fingerprint. Two runs measured
        # the same code when the fingerprints match.
        pending = subprocess.run(  # noqa: S603 - a fixed command
            [git, "status", "--porcelain", "--", "app", "migrations"],
            cwd=ROOT,
            capture_output=True,
        ).stdout
        diff = subprocess.run(  # noqa: S603 - a fixed command
            [git, "diff", "HEAD", "--", "app", "migrations"], cwd=ROOT, capture_output=True
        ).stdout
        if pending:
            fingerprint = hashlib.sha256(pending + diff).hexdigest()[:10]
            commit = f"{head} + uncommitted app changes {fingerprint}"
        else:
            commit = head
    versions = {"python": platform.python_version()}
    for package in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "pydantic"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)

    async def server_version() -> str:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return str(await connection.scalar(text("SHOW server_version")))
        finally:
            await engine.dispose()

    versions["postgresql"] = asyncio.run(server_version())
    busy_before = machine_busy_seconds()
    time.sleep(IDLE_CHECK_SECONDS)
    busy_percent = 100 * (machine_busy_seconds() - busy_before) / IDLE_CHECK_SECONDS
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "commit": commit,
        "versions": versions,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "cpu_busy_before_percent": round(busy_percent, 1),
    }


def contaminated(other_cpu_percent: object) -> str:
    """A mark for a figure measured while other processes took a noticeable share of the CPU."""
    busy = isinstance(other_cpu_percent, int | float) and other_cpu_percent > BUSY_WARNING_PERCENT
    return f" {CONTAMINATED_MARK}" if busy else ""


def print_table(report: dict[str, object]) -> None:
    """The human-readable report."""
    config, context, phases = report["config"], report["context"], report["phases"]
    checks, pgbench, found = report["money"], report["pgbench"], report["ratios"]
    assert isinstance(config, dict)  # noqa: S101 - narrowing for mypy, built just above
    assert isinstance(context, dict)  # noqa: S101
    assert isinstance(phases, dict)  # noqa: S101
    assert isinstance(checks, dict)  # noqa: S101
    assert isinstance(pgbench, dict)  # noqa: S101
    assert isinstance(found, dict)  # noqa: S101
    print(
        f"payments load: {config['seconds']}s per phase after {WARMUP_SECONDS:.0f}s warm-up; "
        f"{config['payers']} payers x 2 accounts, {config['payees']} payees; "
        f"{OWN_ACCOUNTS_SHARE:.0%} of payments between a payer's own two accounts"
    )
    print(
        f"server: {config['pinning']}; production Argon2id/pool defaults, rate limits "
        f"raised; server env overrides: {config['server_env'] or 'none'}"
    )
    versions = context["versions"]
    assert isinstance(versions, dict)  # noqa: S101
    print(
        f"context: {context['date']}, {context['cpus']}x {context['cpu']}, commit "
        f"{context['commit']}, load avg {context['loadavg_before']} -> "
        f"{context['loadavg_after']}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    busy = context["cpu_busy_before_percent"]
    if isinstance(busy, float) and busy > BUSY_WARNING_PERCENT:
        print(
            f"WARNING: the machine was {busy}% busy (of one core) just before the run: "
            "someone else's load skews these numbers (see oth%)"
        )
    columns = (
        ("rps", "req/s", 8),
        ("rps_p10", "p10/s", 7),
        ("rps_p90", "p90/s", 7),
        ("p50_ms", "p50 ms", 8),
        ("p99_ms", "p99 ms", 8),
        ("max_ms", "max ms", 8),
        ("server_cpu_percent", "srv%", 6),
        ("postgres_cpu_percent", "pg%", 6),
        ("client_cpu_percent", "cli%", 6),
        ("other_cpu_percent", "oth%", 6),
        ("max_rss_mb", "RSS MB", 7),
        ("db_conns_mean", "conns", 6),
        ("db_active_mean", "activ", 6),
        ("db_idle_in_tx_mean", "idl-tx", 7),
        ("db_lock_wait_mean", "lockw", 6),
    )
    header = f"{'phase':<13}" + "".join(f"{title:>{width}}" for _, title, width in columns)
    header += "  statuses / errors"
    print(header)
    print("-" * len(header))
    for name, summary in phases.items():
        assert isinstance(summary, dict)  # noqa: S101
        cells = "".join(
            f"{'-' if summary.get(key) is None else summary[key]!s:>{width}}"
            for key, _, width in columns
        )
        flag = contaminated(summary["other_cpu_percent"])
        print(f"{name + flag:<13}{cells}  {summary['statuses']} {summary['errors'] or ''}")
    print(
        "(CPU % of one core: srv the API process, pg every postgres process (anyone's), cli this "
        "load generator, oth the rest of the machine; conns/activ/idl-tx/lockw: mean of the "
        "API's DB connections open / running a statement / idle in a transaction / waiting on "
        "a lock)"
    )
    print(
        f"{CONTAMINATED_MARK} = other processes used more than {BUSY_WARNING_PERCENT:.0f}% of a "
        "core during the window: the figure is skewed, run again on a quiet machine"
    )
    for key, value in found.items():
        if key.startswith("payments_over_health_"):
            concurrency = key.removeprefix("payments_over_health_")
            print(f"payments/s ÷ health/s at {concurrency} clients = {value}")
    if pgbench.get("skipped"):
        print(f"pgbench: skipped: {pgbench['skipped']}")
        if pgbench.get("output_tail"):
            print(f"--- pgbench output (tail) ---\n{pgbench['output_tail']}")
    else:
        mark = "ok" if found["payments_over_pgbench_ok"] else "UNDER"
        print(
            f"pgbench payment script, {config['pgbench_clients']} clients, "
            f"{config['pgbench_seconds']}s: {pgbench['tps']} tps, latency avg "
            f"{pgbench['latency_ms']} ms, failed {pgbench['failed']} (CPU: pg "
            f"{pgbench['postgres_cpu_percent']}%, pgbench {pgbench['pgbench_cpu_percent']}%, oth "
            f"{pgbench['other_cpu_percent']}%{contaminated(pgbench['other_cpu_percent'])})"
        )
        print(
            f"payments-{config['pgbench_clients']}/s ÷ pgbench tps = "
            f"{found['payments_over_pgbench']}  (target >= {TARGET_PGBENCH_RATIO})  {mark}"
        )
    print(f"ledger verify (after every phase and pgbench): {report['ledger_verify']}")
    logged = report["server_log"]
    assert isinstance(logged, dict)  # noqa: S101
    print(
        "server log: "
        + ", ".join(f"{event} x{logged[event]}" for event in SERVER_LOG_EVENTS)
        + f" ({logged['lines']} lines at WARNING and above)"
    )
    print(
        f"money: users {checks['users_total']} + system {checks['system_total']} = "
        f"{int(str(checks['users_total'])) + int(str(checks['system_total']))} "
        f"({'ok' if checks['sum_is_zero'] else 'NOT ZERO'}); users' total "
        f"{'unchanged' if checks['users_total_unchanged'] else 'CHANGED'} since funding "
        f"({checks['funded_total']})"
    )
    print(
        f"payments: {checks['payments_201_seen']} answered 201, "
        f"{checks['payments_succeeded_in_db']} succeeded in the database "
        f"({checks['ledger_payment_transactions']} ledger transactions), "
        f"{checks['payments_failed_in_db']} failed, {checks['payments_outcome_unknown']} "
        f"unknown; {checks['accounts_mismatched']} of {checks['accounts_checked']} accounts "
        f"differ from the 201s -> every 201 accounted for: {checks['every_201_accounted_for']}"
    )
    if not pgbench.get("skipped"):
        print(
            f"pgbench: {checks['ledger_transactions_without_payment']} ledger transactions "
            f"committed, {pgbench['transactions']} reported; its moves are in the expected "
            "balances above"
        )


# --- entry point ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument(
        "--concurrency",
        default="16,64",
        help="comma-separated client counts; each gets a health and a payments phase",
    )
    parser.add_argument("--payers", type=int, default=8, help="users who pay (2 accounts each)")
    parser.add_argument("--payees", type=int, default=4, help="users who only receive")
    parser.add_argument("--pgbench-seconds", type=float, default=10.0)
    parser.add_argument("--pgbench-clients", type=int, default=16)
    parser.add_argument("--no-pgbench", action="store_true", help="skip the pgbench reference")
    parser.add_argument("--seed", type=int, default=None, help="seed of the payment choices")
    add_server_env_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(part) for part in args.concurrency.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--concurrency expects numbers like 16,64, got {args.concurrency!r}")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs at least one positive number")
    if args.payers < 1 or args.payees < 0 or args.seconds <= 0:
        parser.error("--payers must be >= 1, --payees >= 0, --seconds > 0")
    args.server_env = parse_server_env(parser, args.server_env)
    return args


def run_server_and_load(
    args: argparse.Namespace, database: str, server_cpu: int | None, server_log: IO[str]
) -> tuple[list[PhaseResult], Population, PgbenchResult]:
    """Migrate, start the server, set up, run every phase and pgbench, stop the server."""
    database_url = database_url_for(database)
    env = payments_server_environment(database_url, args.server_env)

    async def load(port: int, pid: int) -> tuple[list[PhaseResult], Population, PgbenchResult]:
        return await measure(args, port, pid, database)

    return run_with_server(database_url, env, server_cpu, server_log, load, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase, check the money, print the report, clean up."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    server_cpu, pinning = choose_cpus(", PostgreSQL unpinned")
    database = new_database_name()
    log(f"database {database}; {pinning}")
    with throwaway_database(database, log) as database_url:
        context = machine_context(database_url)
        # The server logs to a file, not a pipe: a full pipe would block it mid-run.
        with tempfile.TemporaryFile(mode="w+") as server_log:
            try:
                phases, population, pgbench = run_server_and_load(
                    args, database, server_cpu, server_log
                )
            except BenchFailedError as error:
                log(f"FAILED: {error}\n{server_output_tail(server_log)}")
                return EXIT_SERVER_FAILED
            if any(phase.errors for phase in phases):
                log(f"requests failed\n{server_output_tail(server_log)}")
            logged = server_log_counts(server_log)
        # The server is stopped: nothing is in flight, every outcome is final.
        verify_code, verify_output = ledger_verify(database_url)
        verify = f"{verify_output} (exit {verify_code})"
        checks = asyncio.run(money_checks(database_url, population))

    context["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    summaries = {phase.name: phase_summary(phase) for phase in phases}
    report: dict[str, object] = {
        "config": {
            "seconds": args.seconds,
            "warmup_seconds": WARMUP_SECONDS,
            "concurrency": args.concurrency,
            "payers": args.payers,
            "payees": args.payees,
            "own_accounts_share": OWN_ACCOUNTS_SHARE,
            "pinning": pinning,
            "server_env": args.server_env,
            "pgbench_clients": args.pgbench_clients,
            "pgbench_seconds": args.pgbench_seconds,
            "seed": args.seed,
        },
        "context": context,
        "phases": summaries,
        "ratios": ratios(summaries, pgbench, args.pgbench_clients),
        "pgbench": pgbench.__dict__,
        "ledger_verify": verify,
        "money": checks,
        "server_log": logged,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    if verify_code != 0 or not money_ok(checks):
        return EXIT_MONEY_CHECK_FAILED
    return EXIT_REQUEST_ERRORS if any(phase.errors for phase in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
