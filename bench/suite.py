"""`make bench`: every scenario of SPEC §4 next to its baselines, in one run, as one table.

    .venv/bin/python bench/suite.py [--seconds 20] [--warmup 5] [--quick]
        [--write docs/performance.md] [--server-env KEY=VALUE ...]

Method (SPEC §4, issue 14): the server under test is pinned to CPU 0 with `taskset`; `wrk -t1`
and `pgbench` run on CPU 1 (PostgreSQL and Redis are shared services and stay unpinned). Each
scenario is a warm-up run, then the measured run; rates are divided by a baseline measured
in the same invocation: the bare FastAPI app of bench/bare_app.py (measured first and last,
the mean of both is the baseline) and bench/sql/payment.sql under pgbench at the payment
rows' concurrency. The API runs as production does (`python -m app.server`, JSON access log
at INFO) with the rate limits raised but on (harness.PRODUCTION_BENCH_ENV).

Bars are reported, never enforced: the exit code is 0 when the harness worked and the money
is right, even if every bar is missed; 2 when the harness or the server broke, 3 when a money
check failed (`ledger verify`, or the payments in the database against the 201s wrk counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    API,
    EXIT_SERVER_FAILED,
    PRODUCTION_SERVER_COMMAND,
    ROOT,
    BenchFailedError,
    add_server_env_option,
    choose_cpus,
    exit_on_sigterm,
    free_port,
    ledger_verify,
    migrate,
    new_database_name,
    parse_server_env,
    percentile,
    production_environment,
    progress_logger,
    throwaway_database,
)
from loadgen import (
    LoadRun,
    PgbenchResult,
    WrkResult,
)
from report import Context, Row, load_average, markdown, write_section
from scenarios import (
    LATE_FINISH_SECONDS,
    LOGIN_CONNECTIONS,
    OVERLOAD_IDLE_BAR_SECONDS,
    PROBE_CONNECTIONS,
    SETTLE_LIMIT_SECONDS,
    WRK_TIMEOUT_SECONDS,
    LoginFlood,
    Measured,
    Options,
    Overload,
    create_pgbench_lookup,
    logged_problems,
    login_flood,
    measure_bare,
    measure_floor,
    overload,
    prepare,
    run_pgbench,
    serving,
    write_population_file,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

EXIT_MONEY_CHECK_FAILED = 3
# Other processes' CPU (% of one core) above which a row is marked as skewed.
BUSY_OTHER_PERCENT = 25.0

log = progress_logger("bench")


@dataclass
class PaymentTally:
    """What every POST /payments run (warm-ups included) answered, for the money check."""

    created: int = 0
    unanswered: int = 0
    other_statuses: Counter[int] = field(default_factory=Counter)

    def add(self, result: WrkResult) -> None:
        """Count one wrk run's answers."""
        self.created += result.statuses.get(201, 0)
        # Unanswered: in flight when wrk stopped, or lost with a broken connection (a timeout
        # is an answer that came late: its status is counted).
        broken = sum(n for kind, n in result.socket_errors.items() if kind != "timeout")
        self.unanswered += result.unanswered + broken
        self.other_statuses.update({c: n for c, n in result.statuses.items() if c != 201})


# --- one server, its scenarios ---------------------------------------------------------------
# --- money -----------------------------------------------------------------------------------


async def payment_counts(database_url: str) -> tuple[dict[str, int], int]:
    """Payments by status, and the sum of every user account's balance."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT status, count(*) FROM payments GROUP BY status")
            )
            by_status = {str(row[0]): int(row[1]) for row in rows}
            users_total = await connection.scalar(
                text("SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'user'")
            )
    finally:
        await engine.dispose()
    return by_status, int(users_total or 0)


def money_checks(
    env: dict[str, str], database_url: str, tally: PaymentTally, funded_total: int, cwd: Path
) -> tuple[list[str], bool]:
    """`ledger verify`, payments against the 201s, users' total; lines and whether all hold."""
    code, output = ledger_verify(env, cwd)
    by_status, users_total = asyncio.run(payment_counts(database_url))
    succeeded = by_status.get("succeeded", 0)
    # A request wrk gave up on (it stopped, or the connection broke) may or may not have been
    # posted: the database may hold up to that many payments more than the 201s seen.
    accounted = tally.created <= succeeded <= tally.created + tally.unanswered
    others = ", ".join(f"{n}x {c}" for c, n in sorted(tally.other_statuses.items())) or "none"
    verdict = output.splitlines()[-1] if output else ""
    lines = [
        f"`python -m app.cli ledger verify`: exit {code} ({verdict})",
        f"payments: wrk counted {tally.created:,} answered 201 (other answers: {others}; "
        f"{tally.unanswered} left unanswered when wrk stopped or a connection broke); the "
        "database holds "
        f"{succeeded:,} succeeded and {by_status.get('failed', 0)} failed payments: "
        + ("every 201 accounted for" if accounted else "MISMATCH"),
        f"users' total balance {users_total:,} = funded {funded_total:,}: "
        + ("unchanged" if users_total == funded_total else "CHANGED"),
    ]
    return lines, code == 0 and accounted and users_total == funded_total


# --- the rows --------------------------------------------------------------------------------


def details(row: Row, measured: Measured, *, note: str = "") -> Row:
    """Fill a row's figures and details from a measured wrk run."""
    result, cpu = measured.wrk, measured.run.cpu
    row.rps, row.p50_ms, row.p99_ms = result.rps, result.p50_ms, result.p99_ms
    row.errors = result.errors
    row.statuses = ", ".join(f"{n:,}x {c}" for c, n in sorted(result.statuses.items()))
    socket = {k: v for k, v in result.socket_errors.items() if v}
    if socket:
        row.statuses += "; " + ", ".join(f"{v} {k}" for k, v in socket.items())
    if result.per_second:
        low, high = percentile(result.per_second, 10), percentile(result.per_second, 90)
        row.spread = f"{low:,.0f}-{high:,.0f}"
    row.stalled_seconds = result.stalled_seconds
    row.server_cpu, row.postgres_cpu, row.other_cpu = cpu.server, cpu.postgres, cpu.other
    row.server_ms_per_request = measured.server_ms_per_request()
    row.peak_rss_mb = measured.run.peak_rss_mb
    notes = [note] if note else []
    if cpu.other > BUSY_OTHER_PERCENT:
        notes.append(f"others used {cpu.other:.0f} % of a core meanwhile: skewed")
    if measured.settled_after is None:
        notes.append(f"server still busy {SETTLE_LIMIT_SECONDS:.0f} s after the load stopped")
    elif measured.settled_after > 2:
        notes.append(f"server idle {measured.settled_after:.1f} s after the load stopped")
    if measured.problems.counts:
        notes.append(
            "server logged "
            + ", ".join(f"{n:,}x {event}" for event, n in sorted(measured.problems.counts.items()))
        )
    row.note = "; ".join(notes)
    return row


def ratio_row(
    scenario: str, measured: Measured, base_rps: float, base_name: str, bar: float, goal: float
) -> Row:
    """A row judged by its rate divided by a baseline's."""
    ratio = measured.wrk.rps / base_rps
    return details(
        Row(
            scenario,
            compared_with=base_name,
            ratio=f"{ratio:.2f}",
            bar=f"≥ {bar:.2f}",
            bar_met=ratio >= bar,
            goal=f"≥ {goal:.2f}" if goal else "—",
            goal_met=ratio >= goal if goal else None,
        ),
        measured,
    )


def no_stall_row(scenario: str, measured: Measured, p99_bar_ms: float) -> Row:
    """A row judged by zero errors and a p99 bound (bar), zero errors and stalls (goal)."""
    result = measured.wrk
    return details(
        Row(
            scenario,
            compared_with="—",
            ratio="—",
            bar=f"0 errors, p99 ≤ {p99_bar_ms / 1000:g} s",
            bar_met=result.errors == 0 and result.p99_ms <= p99_bar_ms,
            goal="no stall, no error",
            goal_met=result.errors == 0 and result.stalled_seconds == 0,
        ),
        measured,
    )


def mean_bare(bare: Sequence[Measured]) -> tuple[float, float]:
    """The bare baseline's req/s and p99: the mean of its runs."""
    return (
        statistics.fmean(m.wrk.rps for m in bare),
        statistics.fmean(m.wrk.p99_ms for m in bare),
    )


def pgbench_row(clients: int, result: PgbenchResult, run: LoadRun) -> Row:
    """A pgbench baseline row."""
    notes = [f"latency average {result.latency_ms:.1f} ms"] if result.latency_ms else []
    if run.cpu.other > BUSY_OTHER_PERCENT:
        notes.append(f"others used {run.cpu.other:.0f} % of a core meanwhile: skewed")
    return Row(
        f"pgbench payment.sql c{clients} (baseline)",
        rps=result.tps,
        errors=result.failed,
        postgres_cpu=run.cpu.postgres,
        other_cpu=run.cpu.other,
        statuses=f"{result.transactions:,} transactions",
        note="; ".join(notes),
    )


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured, in the order it ran."""

    bare: list[Measured] = field(default_factory=list)
    floor: Measured | None = None
    scenarios: dict[str, Measured] = field(default_factory=dict)
    pgbench: dict[int, tuple[PgbenchResult, LoadRun]] = field(default_factory=dict)
    flood: LoginFlood | None = None
    overload: Overload | None = None
    checks: list[str] = field(default_factory=list)
    money_ok: bool = True


def run_project(
    results: Results, options: Options, database: str, database_url: str, workdir: Path
) -> None:
    """Every scenario against `python -m app.server`, then the money checks."""
    port = free_port()
    env = production_environment(database_url, port, options.server_env)
    tally = PaymentTally()
    with serving(
        PRODUCTION_SERVER_COMMAND,
        env,
        port=port,
        workdir=workdir,
        name="api",
        ready_path="/health/live",
        options=options,
    ) as api:
        log("set-up: users, accounts, funding (Argon2id: a few seconds)")
        actors = asyncio.run(prepare(api.base_url, database_url))
        population_file = workdir / "population.txt"
        write_population_file(population_file, actors.population)
        asyncio.run(create_pgbench_lookup(database_url, actors.population))
        reader = [f"Authorization: Bearer {actors.reader_token}"]
        account_path = f"{API}/accounts/{actors.reader_account}"
        payer = [f"Authorization: Bearer {actors.population.payers[0].token}"]

        def payment_args() -> list[str]:
            return [str(population_file), secrets.token_hex(6)]

        scenarios = results.scenarios
        scenarios["live"] = api.measure("GET /health/live c64", "/health/live", connections=64)
        for connections in (64, 256):
            scenarios[f"read{connections}"] = api.measure(
                f"GET /accounts/{{id}} c{connections}",
                account_path,
                connections=connections,
                headers=reader,
            )
        for connections in (16, 64, 256):
            scenarios[f"pay{connections}"] = api.measure(
                f"POST /payments c{connections}",
                f"{API}/payments",
                connections=connections,
                script="payments.lua",
                script_args=payment_args,
                on_result=tally.add,
            )
            if connections in (16, 64):
                results.pgbench[connections] = run_pgbench(
                    database,
                    actors.population,
                    clients=connections,
                    options=options,
                    server_pid=api.process.pid,
                )
        scenarios["list64"] = api.measure(
            "GET /payments?limit=20 c64", f"{API}/payments?limit=20", connections=64, headers=payer
        )
        scenarios["probe"] = api.measure(
            f"GET /users/me c{PROBE_CONNECTIONS}",
            f"{API}/users/me",
            connections=PROBE_CONNECTIONS,
            headers=[f"Authorization: Bearer {actors.prober_token}"],
        )
        results.flood = login_flood(api, actors, options)
        results.overload = overload(api, actors, options)
        problems = logged_problems(api.log_path)
    # The server is stopped: nothing is in flight, every outcome is final.
    results.checks, results.money_ok = money_checks(
        env, database_url, tally, actors.population.funded_total, workdir
    )
    results.checks.append(
        "server log, warnings and errors: "
        + (", ".join(f"{n:,}x {event}" for event, n in sorted(problems.counts.items())) or "none")
    )
    results.checks += [
        f"first `{event}`: `{sample}`" for event, sample in sorted(problems.samples.items())
    ]


def build_rows(results: Results) -> tuple[list[Row], list[str]]:
    """The table's rows, and extra lines for the checks list."""
    bare_rps, bare_p99 = mean_bare(results.bare)
    base = f"bare ping ({bare_rps:,.0f} req/s, p99 {bare_p99:.1f} ms)"
    s = results.scenarios
    rows = [
        details(Row(f"bare GET /ping c64 ({label})"), m)
        for label, m in zip(("first", "last"), results.bare, strict=False)
    ]
    rows.append(ratio_row("GET /health/live c64", s["live"], bare_rps, base, 0.67, 0.67))
    read = s["read64"]
    rate, p99 = read.wrk.rps / bare_rps, read.wrk.p99_ms / bare_p99
    rows.append(
        details(
            Row(
                "GET /accounts/{id} c64 (auth, rate-limited, cached)",
                compared_with=base,
                ratio=f"{rate:.2f}; p99 x{p99:.1f}",
                bar="≥ 0.30, p99 ≤ 3x",
                bar_met=rate >= 0.30 and p99 <= 3,
                goal="≥ 0.50, p99 ≤ 3x",
                goal_met=rate >= 0.50 and p99 <= 3,
            ),
            read,
        )
    )
    if results.floor is not None:
        # The least any cached, authenticated read can cost here: what the read's bar is
        # measured against in truth (bench/floor_app.py).
        floor = results.floor.wrk
        rows.append(
            details(
                Row(
                    "floor GET /floor/{id} c64 (FastAPI + JWT + one Redis script, nothing else)",
                    compared_with=base,
                    ratio=f"{floor.rps / bare_rps:.2f}; p99 x{floor.p99_ms / bare_p99:.1f}",
                ),
                results.floor,
                note=f"the cached read does {read.wrk.rps / floor.rps:.2f} of its rate",
            )
        )
    rows.append(no_stall_row("GET /accounts/{id} c256", s["read256"], 1500))
    rows.append(ratio_row("GET /payments?limit=20 c64", s["list64"], bare_rps, base, 0.15, 0))
    for clients in (16, 64):
        result, run = results.pgbench[clients]
        rows.append(pgbench_row(clients, result, run))
        rows.append(
            ratio_row(
                f"POST /payments c{clients}",
                s[f"pay{clients}"],
                result.tps,
                f"pgbench c{clients} ({result.tps:,.0f} tx/s)",
                0.25,
                0.50,
            )
        )
    rows.append(no_stall_row("POST /payments c256", s["pay256"], 3000))
    probe = s["probe"]
    rows.append(details(Row(f"GET /users/me c{PROBE_CONNECTIONS} (no logins)"), probe))
    extra: list[str] = []
    if results.flood is not None:
        flood = results.flood
        factor = flood.probe.wrk.p99_ms / probe.wrk.p99_ms
        logins = flood.logins
        row = details(
            Row(
                f"GET /users/me c{PROBE_CONNECTIONS} + {LOGIN_CONNECTIONS} logins",
                compared_with=f"GET /users/me c{PROBE_CONNECTIONS} without logins",
                ratio=f"p99 x{factor:.1f}; peak RSS {flood.peak_rss_mb:.0f} MB",
                bar="p99 ≤ 2x, < 300 MB",
                bar_met=factor <= 2 and flood.peak_rss_mb < 300,
                goal="p99 ≤ 2x, < 300 MB",
                goal_met=factor <= 2 and flood.peak_rss_mb < 300,
            ),
            flood.probe,
            note=f"logins: {logins.ok / logins.seconds:.1f}/s, p50 {logins.p50_ms / 1000:.1f} s, "
            f"{logins.errors} errors",
        )
        row.peak_rss_mb = flood.peak_rss_mb
        rows.append(row)
    if results.overload is not None:
        over = results.overload
        idle = over.idle_after
        rows.append(
            details(
                Row(
                    f"overload: GET /accounts/{{id}} c256 --timeout {WRK_TIMEOUT_SECONDS}s, "
                    "then idle",
                    compared_with="—",
                    ratio="idle after "
                    + ("> limit" if idle is None else f"{idle:.1f} s")
                    + f"; {over.late_finishes} late finishes",
                    bar=f"idle ≤ {OVERLOAD_IDLE_BAR_SECONDS:.0f} s",
                    bar_met=idle is not None and idle <= OVERLOAD_IDLE_BAR_SECONDS,
                ),
                over.measured,
                note=f"{over.late_finishes} of {over.logged:,} logged requests finished more "
                f"than {LATE_FINISH_SECONDS:.0f} s after their client left",
            )
        )
    if len(results.bare) == 2:
        first, last = (m.wrk.rps for m in results.bare)
        extra.append(
            f"bare baseline drift: {first:,.0f} req/s first, {last:,.0f} last "
            f"({max(first, last) / min(first, last):.2f}x apart): ratios to bare are uncertain "
            "by about that much"
        )
    non_login = [r.peak_rss_mb for r in rows[2:] if r.peak_rss_mb and "logins" not in r.scenario]
    if non_login:
        peak = max(non_login)
        extra.append(
            f"peak RSS of the API without logins: {peak:.0f} MB (SPEC §4: < 150 MB): "
            + ("PASS" if peak < 150 else "MISS")
        )
    return rows, extra


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path | None, Path | None]:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per scenario")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s warm-up, 3 s measured, nothing written"
    )
    parser.add_argument("--write", type=Path, help="markdown file whose marked section to replace")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.warmup < 1:
        parser.error("--seconds and --warmup must be >= 1 (wrk counts whole seconds)")
    options = Options(
        warmup=1 if args.quick else args.warmup,
        seconds=3 if args.quick else args.seconds,
        quick=args.quick,
        server_env=parse_server_env(parser, args.server_env),
    )
    return options, None if args.quick else args.write, args.json


async def postgres_version(database_url: str) -> str:
    """SHOW server_version."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything, print the table, write it where asked."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options, write_to, json_to = parse_args(argv)
    missing = [tool for tool in ("wrk", "pgbench", "taskset") if shutil.which(tool) is None]
    if missing:
        log(f"missing {', '.join(missing)}: `make bench` installs them (apt-get)")
        return EXIT_SERVER_FAILED
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    script = shlex.join([".venv/bin/python", "bench/suite.py", *argv])
    # Before pinning: `nproc` counts the CPUs this process may use.
    context = Context(
        # `make bench BENCH_FLAGS=...` shows as the script's command line under make.
        command=f"`make bench` (which ran `{script}`)"
        if "MAKELEVEL" in os.environ
        else f"`{script}`",
        quick=options.quick,
        seconds=options.seconds,
        warmup=options.warmup,
    )
    server_cpu, pinning = choose_cpus(", PostgreSQL and Redis unpinned")
    if server_cpu != 0:
        log(f"WARNING: {pinning}")
    context.pinning = f"server {pinning}"
    started = time.monotonic()
    results = Results()
    database = new_database_name()
    log(f"database {database}; {pinning}")
    try:
        with (
            throwaway_database(database, log) as database_url,
            tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp,
        ):
            workdir = Path(tmp)
            context.collect_versions(asyncio.run(postgres_version(database_url)))
            migrate(database_url)
            results.bare.append(measure_bare(options, workdir, "first"))
            results.floor = measure_floor(options, workdir)
            run_project(results, options, database, database_url, workdir)
            results.bare.append(measure_bare(options, workdir, "last"))
    except BenchFailedError as error:
        log(f"FAILED: {error}")
        return EXIT_SERVER_FAILED
    context.load_after = load_average()
    minutes, secs = divmod(round(time.monotonic() - started), 60)
    context.duration = f"{minutes} min {secs:02d} s"
    rows, extra = build_rows(results)
    section = markdown(context, rows, results.checks + extra)
    print(section)
    if write_to is not None:
        write_section(write_to if write_to.is_absolute() else ROOT / write_to, section)
        log(f"written to {write_to}")
    if json_to is not None:
        json_to.write_text(json.dumps([row.__dict__ for row in rows], indent=2, default=str))
    if not results.money_ok:
        log("MONEY CHECK FAILED")
        return EXIT_MONEY_CHECK_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
