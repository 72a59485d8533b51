"""How `make bench` drives each scenario: servers, wrk runs, the login flood, the overload.

A `Server` is one process pinned to CPU 0 (`serving` starts and stops it); `Server.measure`
is a scenario's warm-up and measured wrk run from CPU 1, each followed by a wait until the
server is idle again. The bare app, pgbench, the login flood and the overload have their own
functions here; suite.py runs them in order and turns them into the table.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import jwt
from harness import (
    API,
    REDIS_URL,
    VENV_BIN,
    BenchFailedError,
    Population,
    build_population,
    expect,
    free_port,
    open_account,
    progress_logger,
    read_proc_status,
    server_output_tail,
    sign_up,
    start_server,
    stop_server,
)
from loadgen import (
    LoadRun,
    PgbenchResult,
    WrkResult,
    parse_pgbench,
    parse_wrk,
    pgbench_command,
    pinned,
    run_load,
    wait_until_idle,
    wrk_command,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

BARE_COMMAND = (str(VENV_BIN / "python"), str(Path(__file__).with_name("bare_app.py")))
FLOOR_COMMAND = (str(VENV_BIN / "python"), str(Path(__file__).with_name("floor_app.py")))
LOAD_CPU = 1
# wrk counts an answer later than this as a timeout and leaves it out of the percentiles;
# high enough that the c256 rows' p99 is measured, not cut off.
WRK_TIMEOUT_SECONDS = 10
LOGIN_TIMEOUT_SECONDS = 120

# Between scenarios the server must be idle again (abandoned requests finished), so one
# scenario's tail does not land in the next one's numbers.
IDLE_BELOW_PERCENT = 5.0
IDLE_QUIET_SECONDS = 1.0
SETTLE_LIMIT_SECONDS = 90.0
OVERLOAD_IDLE_BAR_SECONDS = 10.0
# A request "finished long after its client left" when its access-log line is this much later
# than the moment the client stopped waiting (its timeout, or wrk's exit).
LATE_FINISH_SECONDS = 1.0

PAYERS, PAYEES = 8, 4
FUNDING_PER_ACCOUNT = 10_000_000_000  # 100 million EUR: no payment ever fails for funds
PROBE_CONNECTIONS, LOGIN_CONNECTIONS = 16, 64

log = progress_logger("bench")


@dataclass
class Options:
    """How long each scenario runs, and what the server gets on top of production defaults."""

    warmup: int
    seconds: int
    quick: bool
    server_env: dict[str, str]


@dataclass
class Measured:
    """One scenario's measured wrk run and what the server did meanwhile."""

    wrk: WrkResult
    run: LoadRun
    settled_after: float | None = None
    problems: Problems = field(default_factory=lambda: Problems())  # server warnings/errors

    def server_ms_per_request(self) -> float | None:
        """Server CPU milliseconds per 2xx answer."""
        return 1000 * self.run.cpu.server_seconds / self.wrk.ok if self.wrk.ok else None


class Server:
    """A pinned server process with a log file, measured with wrk from the load CPU."""

    def __init__(
        self, process: subprocess.Popen[str], port: int, log_path: Path, options: Options
    ) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.options = options

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self.port}"

    def check_alive(self) -> None:
        """Fail loudly if the server died under load."""
        if self.process.poll() is not None:
            raise BenchFailedError(f"server died (exit {self.process.returncode})")

    def log_offset(self) -> int:
        """How much the server has logged so far (bytes)."""
        return self.log_path.stat().st_size

    def settle(self) -> float | None:
        """Wait until the server is idle; seconds it took (None: still busy at the limit)."""
        return wait_until_idle(
            self.process.pid,
            below_percent=IDLE_BELOW_PERCENT,
            quiet_seconds=IDLE_QUIET_SECONDS,
            limit_seconds=SETTLE_LIMIT_SECONDS,
        )

    def wrk(
        self,
        path: str,
        *,
        connections: int,
        seconds: int,
        headers: Sequence[str] = (),
        script: str = "status.lua",
        script_args: Sequence[str] = (),
        timeout_seconds: int = WRK_TIMEOUT_SECONDS,
    ) -> list[str]:
        """A pinned wrk command against this server."""
        command = wrk_command(
            f"{self.base_url}{path}",
            connections=connections,
            seconds=seconds,
            timeout_seconds=timeout_seconds,
            script=script,
            headers=headers,
            script_args=script_args,
        )
        return pinned(command, LOAD_CPU)

    def measure(
        self,
        name: str,
        path: str,
        *,
        connections: int,
        headers: Sequence[str] = (),
        script: str = "status.lua",
        script_args: Callable[[], Sequence[str]] = tuple,
        on_result: Callable[[WrkResult], None] | None = None,
    ) -> Measured:
        """Warm up, measure, wait for the server to be idle again."""
        measured: Measured | None = None
        for phase, seconds in (
            ("warm-up", self.options.warmup),
            ("measured", self.options.seconds),
        ):
            log(f"{name}: {phase} {seconds} s")
            command = self.wrk(
                path,
                connections=connections,
                seconds=seconds,
                headers=headers,
                script=script,
                script_args=script_args(),
            )
            offset = self.log_offset()
            run = run_load([command], server_pid=self.process.pid, planned_seconds=seconds)
            result = parse_wrk(run.outputs[0])
            if on_result is not None:
                on_result(result)
            self.check_alive()
            # What wrk left in flight when it stopped is still being served: let it finish,
            # so it does not weigh on the measured run (or on the next scenario).
            measured = Measured(result, run, settled_after=self.settle())
            measured.problems = logged_problems(self.log_path, offset, self.log_offset())
        assert measured is not None  # noqa: S101 - the loop ran twice
        return measured


@contextlib.contextmanager
def serving(
    command: Sequence[str],
    env: dict[str, str],
    *,
    port: int,
    workdir: Path,
    name: str,
    ready_path: str,
    options: Options,
) -> Iterator[Server]:
    """Start a server pinned to CPU 0 (output to workdir/<name>.log), stop it at the end."""
    server_cpu = 0 if shutil.which("taskset") else None
    log_path = workdir / f"{name}.log"
    # Append mode: the server's writes always land at the end, whatever we read meanwhile.
    with log_path.open("a+") as log_file:
        process = start_server(
            command, port, env, server_cpu, log_file, ready_path=ready_path, cwd=workdir
        )
        try:
            yield Server(process, port, log_path, options)
        except BenchFailedError:
            log(server_output_tail(log_file))
            raise
        finally:
            code = stop_server(process)
            log(f"{name} stopped (exit code {code})")


# --- the scenarios ---------------------------------------------------------------------------


def _baseline(
    options: Options,
    workdir: Path,
    command: Sequence[str],
    *,
    name: str,
    path: str,
    env: dict[str, str] | None = None,
    headers: Sequence[str] = (),
) -> Measured:
    """A baseline app of bench/ (ready at `/ping`) served on its own, `path` measured at c64."""
    port = free_port()
    with serving(
        command,
        {"PATH": "/usr/bin:/bin", "PORT": str(port), **(env or {})},
        port=port,
        workdir=workdir,
        name=name.split()[0],
        ready_path="/ping",
        options=options,
    ) as server:
        return server.measure(name, path, connections=64, headers=headers)


def measure_bare(options: Options, workdir: Path, label: str) -> Measured:
    """The bare `GET /ping` at c64."""
    return _baseline(
        options, workdir, BARE_COMMAND, name=f"bare GET /ping c64 ({label})", path="/ping"
    )


def measure_floor(options: Options, workdir: Path) -> Measured:
    """The floor of a cached read (bench/floor_app.py): JWT, one Redis script, an answer; c64."""
    key = secrets.token_hex(32)
    token = jwt.encode({"sub": "floor-user"}, key, algorithm="HS256")
    return _baseline(
        options,
        workdir,
        FLOOR_COMMAND,
        name="floor GET /floor/{id} c64",
        path="/floor/3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de",
        env={"REDIS_URL": REDIS_URL, "FLOOR_JWT_KEY": key},
        headers=[f"Authorization: Bearer {token}"],
    )


@dataclass
class Actors:
    """The users the scenarios act as."""

    population: Population
    reader_token: str
    reader_account: str
    prober_token: str
    prober_email: str
    prober_password: str


async def prepare(base_url: str, database_url: str) -> Actors:
    """Payers with funded accounts and payees; a reader with one account; a login user."""
    async with httpx.AsyncClient(timeout=60) as client:
        population = await build_population(
            client,
            base_url,
            database_url,
            payers=PAYERS,
            payees=PAYEES,
            funding=FUNDING_PER_ACCOUNT,
        )
        _, _, reader_token = await sign_up(client, base_url, "reader")
        reader_account = await open_account(client, base_url, reader_token, "reader")
        email, password, prober_token = await sign_up(client, base_url, "prober")
        # A first read fills the cache, so the cached-read rows measure hits.
        response = await client.get(
            f"{base_url}{API}/accounts/{reader_account}",
            headers={"Authorization": f"Bearer {reader_token}"},
        )
        expect(response, 200, "read account")
    return Actors(population, reader_token, reader_account, prober_token, email, password)


def write_population_file(path: Path, population: Population) -> None:
    """The file payments.lua reads: payers (token, two accounts), then every account."""
    lines = [f"payer {p.token} {p.accounts[0]} {p.accounts[1]}" for p in population.payers]
    lines += [f"account {account}" for account in population.accounts]
    path.write_text("\n".join(lines) + "\n")


def run_pgbench(
    database: str, population: Population, *, clients: int, options: Options, server_pid: int
) -> tuple[PgbenchResult, LoadRun]:
    """Pgbench doing one payment's SQL at `clients`: warm-up, then the measured run."""
    variables = {"nsources": 2 * len(population.payers), "naccounts": len(population.accounts)}
    outcome: tuple[PgbenchResult, LoadRun] | None = None
    for phase, seconds in (("warm-up", options.warmup), ("measured", options.seconds)):
        log(f"pgbench payment c{clients}: {phase} {seconds} s")
        command = pgbench_command(database, clients=clients, seconds=seconds, variables=variables)
        run = run_load([pinned(command, LOAD_CPU)], server_pid=server_pid, planned_seconds=seconds)
        outcome = (parse_pgbench(run.outputs[0]), run)
    assert outcome is not None  # noqa: S101 - the loop ran twice
    return outcome


async def create_pgbench_lookup(database_url: str, population: Population) -> None:
    """bench_accounts(n, id, user_id): payment.sql's way from a number to an account."""
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
                {"ids": population.accounts},
            )
    finally:
        await engine.dispose()


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class LoginFlood:
    """The probe's run during the flood, and what the logins and the memory did."""

    probe: Measured
    logins: WrkResult
    peak_rss_mb: float


def login_flood(server: Server, actors: Actors, options: Options) -> LoginFlood:
    """64 login loops, and the probe measured once they are in full flow."""
    name = f"GET /users/me c{PROBE_CONNECTIONS} + {LOGIN_CONNECTIONS} logins"
    log(f"{name}: {options.warmup} s of logins alone, then {options.seconds} s measured")
    hwm_reset = reset_peak_rss(server.process.pid)
    offset = server.log_offset()
    logins = server.wrk(
        f"{API}/auth/login",
        connections=LOGIN_CONNECTIONS,
        seconds=options.warmup + options.seconds + 1,
        script="login.lua",
        script_args=(actors.prober_email, actors.prober_password),
        timeout_seconds=LOGIN_TIMEOUT_SECONDS,
    )
    probe = server.wrk(
        f"{API}/users/me",
        connections=PROBE_CONNECTIONS,
        seconds=options.seconds,
        headers=[f"Authorization: Bearer {actors.prober_token}"],
    )
    run = run_load(
        [logins, probe],
        server_pid=server.process.pid,
        planned_seconds=options.warmup + options.seconds + 1,
        start_delays=[0.0, float(options.warmup)],
    )
    server.check_alive()
    peak = run.peak_rss_mb
    if hwm_reset:
        with contextlib.suppress(OSError, ValueError):
            peak = max(peak, read_proc_status(server.process.pid)["VmHWM"] * 1024 / 1e6)
    measured = Measured(parse_wrk(run.outputs[1]), run)
    # The logins wrk abandoned at its end are still queued for a hash: let them drain.
    measured.settled_after = server.settle()
    measured.problems = logged_problems(server.log_path, offset, server.log_offset())
    return LoginFlood(measured, parse_wrk(run.outputs[0]), peak)


@dataclass
class Overload:
    """The overload run, how long the server took to go idle, and the late finishers."""

    measured: Measured
    idle_after: float | None
    late_finishes: int
    logged: int


def overload(server: Server, actors: Actors, options: Options) -> Overload:
    """Wrk -c256 --timeout 10s on the cached read for `seconds`, then watch the server idle."""
    path = f"{API}/accounts/{actors.reader_account}"
    log(f"overload: GET {path} c256 for {options.seconds} s, then idle")
    offset = server.log_offset()
    command = server.wrk(
        path,
        connections=256,
        seconds=options.seconds,
        headers=[f"Authorization: Bearer {actors.reader_token}"],
    )
    run = run_load([command], server_pid=server.process.pid, planned_seconds=options.seconds)
    idle_after = server.settle()
    server.check_alive()
    late, logged = late_finishes(server.log_path, offset, path, left_at=run.ended_at)
    measured = Measured(parse_wrk(run.outputs[0]), run, settled_after=idle_after)
    measured.problems = logged_problems(server.log_path, offset, server.log_offset())
    return Overload(measured, idle_after, late, logged)


def late_finishes(log_path: Path, offset: int, path: str, *, left_at: float) -> tuple[int, int]:
    """Access-log lines of `path` (from byte `offset`) that finished long after the client left.

    A client leaves when its timeout passes (start + WRK_TIMEOUT_SECONDS, the start being the
    line's time minus its `duration_ms`) or when wrk exits (`left_at`), whichever is first.
    Returns the late ones and every line counted.
    """
    late = logged = 0
    with log_path.open() as lines:
        lines.seek(offset)
        for line in lines:
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry.get("event") != "request" or entry.get("path") != path:
                    continue
                finished = datetime.fromisoformat(entry["timestamp"]).timestamp()
                started = finished - float(entry["duration_ms"]) / 1000
                logged += 1
                if finished - min(started + WRK_TIMEOUT_SECONDS, left_at) > LATE_FINISH_SECONDS:
                    late += 1
    return late, logged


@dataclass
class Problems:
    """The server's warning and error lines: counts by level and event, and a sample of each."""

    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)  # the exception's last line, or a field


def logged_problems(log_path: Path, start: int = 0, end: int | None = None) -> Problems:
    """The server's warning and error lines (bytes `start` to `end`), counted by event."""
    problems = Problems()
    with log_path.open("rb") as lines:
        lines.seek(start)
        for raw in lines:
            if end is not None and lines.tell() - len(raw) >= end:
                break
            line = raw.decode(errors="replace")
            if '"level"' not in line or '"level":"info"' in line:  # the access log: skip fast
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry["level"] not in ("warning", "error", "critical"):
                    continue
                key = f"{entry['level']} {entry['event']}"
                problems.counts[key] = problems.counts.get(key, 0) + 1
                if key not in problems.samples:
                    detail = str(entry.get("exception") or entry.get("error") or "").strip()
                    lines_of = detail.splitlines()
                    problems.samples[key] = (lines_of[-1] if lines_of else "")[:300]
    return problems
