"""The load of `make bench`: wrk and pgbench on the load CPU, the server watched while they run.

`run_load` starts one or more load commands (each already pinned with `taskset`), samples the
server's RSS every 100 ms until they exit, and tells apart the CPU that the server,
PostgreSQL, the load generators and everything else used meanwhile, so a figure skewed by
someone else's job on a shared machine shows as such. wrk's Lua scripts (bench/lua/) print one
`BENCH_RESULT {json}` line, parsed by `parse_wrk`; pgbench's summary is parsed by
`parse_pgbench`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    BenchFailedError,
    kib_to_mb,
    read_proc_cpu_seconds,
    read_proc_status,
)

BENCH_DIR = Path(__file__).resolve().parent
LUA_DIR = BENCH_DIR / "lua"
PAYMENT_SQL = BENCH_DIR / "sql" / "payment.sql"
RESULT_MARK = "BENCH_RESULT "
SAMPLE_SECONDS = 0.1
# A load command that has not exited this long after its planned end is killed: the harness
# is broken, not the server slow (wrk stops on its own clock whatever the server does).
OVERRUN_SECONDS = 60.0


# --- CPU accounting ------------------------------------------------------------------------


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of every `postgres` process, by pid (exited backends via the postmaster)."""
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if (entry / "comm").read_text().strip() == "postgres":
                    seconds[int(entry.name)] = read_proc_cpu_seconds(
                        int(entry.name), with_children=True
                    )
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat; steal and guests excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle - sum(fields[7:])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU seconds of the server, PostgreSQL, our reaped children, the machine."""

    server: float
    postgres: dict[int, float]
    children: float
    machine: float
    at: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        """Read them all now."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            server=read_proc_cpu_seconds(server_pid),
            postgres=postgres_cpu_seconds(),
            children=children.ru_utime + children.ru_stime,
            machine=machine_busy_seconds(),
            at=time.monotonic(),
        )


@dataclass(frozen=True)
class CpuShares:
    """CPU used between two snapshots, in % of one core; `other` is everyone else's."""

    server: float
    postgres: float
    load: float
    other: float
    server_seconds: float

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot) -> CpuShares:
        """The shares of the interval between two snapshots."""
        wall = max(after.at - before.at, 1e-9)
        server = after.server - before.server
        postgres = sum(s - before.postgres.get(pid, 0.0) for pid, s in after.postgres.items())
        load = after.children - before.children
        # This process (the sampler) is counted as load, with the generators it started.
        other = max(0.0, after.machine - before.machine - server - postgres - load)
        return cls(
            server=100 * server / wall,
            postgres=100 * postgres / wall,
            load=100 * load / wall,
            other=100 * other / wall,
            server_seconds=server,
        )


# --- running load --------------------------------------------------------------------------


@dataclass
class LoadRun:
    """What the load commands printed, and what the server did meanwhile."""

    outputs: list[str]
    cpu: CpuShares
    peak_rss_mb: float
    started_at: float  # wall clock (time.time()), comparable with the server's log timestamps
    ended_at: float


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """`command` under `taskset -c cpu` when there is a CPU to pin to."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *command] if cpu is not None and taskset else list(command)


def run_load(
    commands: Sequence[Sequence[str]],
    *,
    server_pid: int,
    planned_seconds: float,
    start_delays: Sequence[float] = (),
) -> LoadRun:
    """Run the load commands (the i-th after start_delays[i] s), watching the server."""
    delays = list(start_delays) + [0.0] * (len(commands) - len(start_delays))
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in commands]
        processes: list[subprocess.Popen[str] | None] = [None] * len(commands)
        peak_kib = 0
        before = CpuSnapshot.take(server_pid)
        started_at, start = time.time(), time.monotonic()
        deadline = start + max(delays, default=0.0) + planned_seconds + OVERRUN_SECONDS
        try:
            while True:
                now = time.monotonic()
                for index, command in enumerate(commands):
                    if processes[index] is None and now - start >= delays[index]:
                        processes[index] = subprocess.Popen(  # noqa: S603 - fixed commands
                            list(command),
                            stdout=outputs[index],
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                with contextlib.suppress(OSError, ValueError):
                    peak_kib = max(peak_kib, read_proc_status(server_pid).get("VmRSS", 0))
                if all(p is not None and p.poll() is not None for p in processes):
                    break
                if now > deadline:
                    raise BenchFailedError(f"load still running after {deadline - start:.0f}s")
                time.sleep(SAMPLE_SECONDS)
        finally:
            for process in processes:
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        ended_at = time.time()
        cpu = CpuShares.between(before, CpuSnapshot.take(server_pid))
        texts = []
        for command, process, output in zip(commands, processes, outputs, strict=True):
            output.seek(0)
            texts.append(output.read())
            if process is not None and process.returncode != 0:
                raise BenchFailedError(
                    f"{shlex.join(command)} exited {process.returncode}:\n{texts[-1][-2000:]}"
                )
    return LoadRun(texts, cpu, kib_to_mb(peak_kib), started_at, ended_at)


def wait_until_idle(
    server_pid: int, *, below_percent: float, quiet_seconds: float, limit_seconds: float
) -> float | None:
    """Seconds until the server's CPU stays under `below_percent` for `quiet_seconds`.

    Sampled in 0.5 s windows; None when it is still busy after `limit_seconds`.
    """
    window = 0.5
    start = time.monotonic()
    quiet_since: float | None = None
    while (elapsed := time.monotonic() - start) < limit_seconds:
        used_before = read_proc_cpu_seconds(server_pid)
        time.sleep(window)
        busy = 100 * (read_proc_cpu_seconds(server_pid) - used_before) / window
        if busy < below_percent:
            quiet_since = elapsed if quiet_since is None else quiet_since
            if elapsed + window - quiet_since >= quiet_seconds:
                return quiet_since
        else:
            quiet_since = None
    return None


# --- wrk -----------------------------------------------------------------------------------


def wrk_command(
    url: str,
    *,
    connections: int,
    seconds: int,
    timeout_seconds: int,
    script: str = "status.lua",
    headers: Sequence[str] = (),
    script_args: Sequence[str] = (),
) -> list[str]:
    """`wrk -t1` with one of bench/lua's scripts (which print the BENCH_RESULT line)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_seconds}s"]
    command += ["-s", str(LUA_DIR / script)]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    return command


@dataclass
class WrkResult:
    """One wrk run, as its Lua `done()` reported it (latencies in ms)."""

    seconds: float
    requests: int
    sent: int
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    stalled_seconds: int
    per_second: list[int]  # answers in each whole second of the run (the partial ends left out)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def ok(self) -> int:
        """2xx answers."""
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def rps(self) -> float:
        """2xx answers per second."""
        return self.ok / self.seconds

    @property
    def errors(self) -> int:
        """Non-2xx answers, plus connect/read/write errors and answers later than --timeout."""
        return self.requests - self.ok + sum(self.socket_errors.values())

    @property
    def unanswered(self) -> int:
        """Requests sent (dynamic scripts count them) that got no answer before wrk stopped."""
        return max(0, self.sent - self.requests)


def parse_wrk(output: str) -> WrkResult:
    """The BENCH_RESULT line of a wrk run."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line.removeprefix(RESULT_MARK))
            latency = {key: float(value) / 1000 for key, value in data["latency_us"].items()}
            return WrkResult(
                seconds=data["duration_us"] / 1e6,
                requests=int(data["requests"]),
                sent=int(data["sent"]),
                statuses={int(code): int(n) for code, n in data["statuses"].items()},
                socket_errors={key: int(n) for key, n in data["errors"].items()},
                stalled_seconds=int(data["stalled_seconds"]),
                per_second=[int(n) for n in data["per_second"]],
                p50_ms=latency["p50"],
                p90_ms=latency["p90"],
                p99_ms=latency["p99"],
                max_ms=latency["max"],
                mean_ms=latency["mean"],
            )
    raise BenchFailedError(f"no {RESULT_MARK.strip()} line in wrk's output:\n{output[-2000:]}")


# --- pgbench -------------------------------------------------------------------------------


def pgbench_command(
    database: str, *, clients: int, seconds: int, variables: dict[str, int]
) -> list[str]:
    """Pgbench running bench/sql/payment.sql with prepared statements."""
    command = ["pgbench", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-n"]
    command += ["-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(seconds)]
    for name, value in variables.items():
        command += ["-D", f"{name}={value}"]
    return [*command, "-f", str(PAYMENT_SQL), database]


@dataclass
class PgbenchResult:
    """One pgbench run: its rate, mean latency and failures."""

    tps: float
    latency_ms: float | None
    transactions: int
    failed: int = 0


def parse_pgbench(output: str) -> PgbenchResult:
    """Pgbench's summary lines."""

    def find(pattern: str) -> str | None:
        match = re.search(pattern, output, re.MULTILINE)
        return match.group(1) if match else None

    tps = find(r"^tps = ([\d.]+)")
    if tps is None:
        raise BenchFailedError(f"no tps in pgbench's output:\n{output[-2000:]}")
    latency = find(r"^latency average = ([\d.]+) ms")
    return PgbenchResult(
        tps=float(tps),
        latency_ms=float(latency) if latency else None,
        transactions=int(find(r"^number of transactions actually processed: (\d+)") or 0),
        failed=int(find(r"^number of failed transactions: (\d+)") or 0),
    )
