"""Measure Argon2id parameter candidates: hash/verify latency and peak RSS under concurrency.

Run from the repository root:

    .venv/bin/python bench/argon2_params.py [--rounds N] [--json]

For every candidate (time cost t, memory cost m in KiB, parallelism p) it measures, with
pwdlib's `Argon2Hasher` exactly as the API uses it:

- wall time of `hash()` and `verify()`: median, p90 and spread over N rounds after a warm-up.
  Rounds are interleaved across candidates (round r runs every candidate once, in a rotated
  order), so drift on a shared machine hits all candidates alike and the ratios against the
  baseline (RFC 9106's second option) stay meaningful even when absolute times wander;
- peak RSS increase while K hashes run at once in K threads, for K in (1, 2, 4). Each case runs
  in a fresh subprocess, so its high-water mark (`VmHWM` in /proc/self/status) belongs to that
  case alone. The burst runs three times; the RSS left over afterwards is reported too,
  because memory the allocator keeps counts against the process budget after a login flood.

The numbers feed docs/adr/0011-argon2id-parameters.md. Timings are never pass/fail here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import argon2
from pwdlib.hashers.argon2 import Argon2Hasher

# A benchmark input, not a credential: any password of ordinary length costs the same.
SAMPLE_PASSWORD = "correct horse battery staple 42"  # noqa: S105
CONCURRENCY_LEVELS = (1, 2, 4)
BURSTS = 3
# NFR-PERF-4 and the brief's assumptions, in bytes (the SPEC's MB are decimal megabytes).
PROCESS_BUDGET_BYTES = 300_000_000
ASSUMED_BASE_BYTES = 100_000_000
FLOOD_LOGINS = 64
DEFAULT_CONCURRENCY = 2
BASELINE_KEY = "rfc9106-2"
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    """One Argon2id parameter set under test."""

    key: str
    label: str
    time_cost: int
    memory_kib: int
    parallelism: int

    def hasher(self) -> Argon2Hasher:
        """An Argon2id hasher with these parameters."""
        return Argon2Hasher(
            time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=self.parallelism
        )


@dataclass(frozen=True)
class Stats:
    """Summary of a list of wall times, in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    p10_ms: float
    min_ms: float
    max_ms: float
    stdev_ms: float


@dataclass(frozen=True)
class MemoryCase:
    """Peak and leftover RSS of one subprocess running K hashes at once."""

    concurrency: int
    base_rss_kib: int
    peak_rss_kib: int
    after_rss_kib: int
    burst_wall_ms: list[float]

    @property
    def peak_increase_kib(self) -> int:
        """How far the high-water mark rose above the RSS before the first burst."""
        return self.peak_rss_kib - self.base_rss_kib

    @property
    def retained_kib(self) -> int:
        """RSS still held after the last burst finished."""
        return self.after_rss_kib - self.base_rss_kib


@dataclass(frozen=True)
class Result:
    """Everything measured for one candidate."""

    candidate: Candidate
    hash_stats: Stats
    verify_stats: Stats
    memory: list[MemoryCase]


def pwdlib_default() -> Candidate:
    """The parameters `Argon2Hasher()` uses when given none, read back from a hash it made."""
    params = argon2.extract_parameters(Argon2Hasher().hash(SAMPLE_PASSWORD))
    return Candidate(
        key="pwdlib-default",
        label="pwdlib default",
        time_cost=params.time_cost,
        memory_kib=params.memory_cost,
        parallelism=params.parallelism,
    )


def candidates() -> list[Candidate]:
    """The parameter sets compared, baseline first."""
    return [
        Candidate(BASELINE_KEY, "RFC 9106 2nd option", 3, 65536, 4),
        Candidate("owasp-19m", "OWASP m=19 MiB", 2, 19456, 1),
        Candidate("owasp-46m", "OWASP m=46 MiB", 1, 47104, 1),
        pwdlib_default(),
        Candidate("t2-64m-p1", "t=2 64 MiB p=1", 2, 65536, 1),
        Candidate("t3-64m-p2", "t=3 64 MiB p=2", 3, 65536, 2),
        # Not a published set: RFC 9106's t and m with one lane, to complete the p comparison.
        Candidate("t3-64m-p1", "t=3 64 MiB p=1", 3, 65536, 1),
    ]


def read_status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (the kernel's kB are KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def reset_high_water_mark() -> None:
    """Reset VmHWM to the current RSS where the kernel allows it (Linux 4.0+)."""
    # If it is not allowed, a fresh process's HWM is already close to its RSS anyway.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def summarize(samples_s: list[float]) -> Stats:
    """Median, p10/p90 (inclusive deciles), extremes and stdev of wall times."""
    ms = sorted(s * 1000 for s in samples_s)
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    return Stats(
        n=len(ms),
        median_ms=statistics.median(ms),
        p90_ms=deciles[8],
        p10_ms=deciles[0],
        min_ms=ms[0],
        max_ms=ms[-1],
        stdev_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0,
    )


def measure_timings(
    cands: list[Candidate], rounds: int, warmup: int
) -> dict[str, tuple[Stats, Stats]]:
    """Time hash() and verify() for every candidate, rounds interleaved across candidates."""
    hashers = {c.key: c.hasher() for c in cands}
    stored = {key: h.hash(SAMPLE_PASSWORD) for key, h in hashers.items()}
    for _ in range(warmup):
        for key, h in hashers.items():
            h.hash(SAMPLE_PASSWORD)
            h.verify(SAMPLE_PASSWORD, stored[key])

    hash_s: dict[str, list[float]] = {c.key: [] for c in cands}
    verify_s: dict[str, list[float]] = {c.key: [] for c in cands}
    for r in range(rounds):
        shift = r % len(cands)
        for cand in cands[shift:] + cands[:shift]:
            h = hashers[cand.key]
            start = time.perf_counter()
            h.hash(SAMPLE_PASSWORD)
            hash_s[cand.key].append(time.perf_counter() - start)
            start = time.perf_counter()
            ok = h.verify(SAMPLE_PASSWORD, stored[cand.key])
            verify_s[cand.key].append(time.perf_counter() - start)
            if not ok:
                raise RuntimeError(f"{cand.key}: verify() rejected the right password")
    return {c.key: (summarize(hash_s[c.key]), summarize(verify_s[c.key])) for c in cands}


def child_memory_case(time_cost: int, memory_kib: int, parallelism: int, k: int) -> None:
    """Subprocess body: run K concurrent hashes BURSTS times, print RSS figures as JSON."""
    hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    reset_high_water_mark()
    base = read_status_kib("VmRSS")
    walls: list[float] = []
    for _ in range(BURSTS):
        barrier = threading.Barrier(k)

        def work(b: threading.Barrier = barrier) -> None:
            b.wait()
            hasher.hash(SAMPLE_PASSWORD)

        threads = [threading.Thread(target=work) for _ in range(k)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        walls.append((time.perf_counter() - start) * 1000)
    case = MemoryCase(
        concurrency=k,
        base_rss_kib=base,
        peak_rss_kib=read_status_kib("VmHWM"),
        after_rss_kib=read_status_kib("VmRSS"),
        burst_wall_ms=walls,
    )
    print(json.dumps(asdict(case)))


def measure_memory(cand: Candidate, k: int) -> MemoryCase:
    """Run one K-concurrent case in a fresh interpreter, so its high-water mark is its own."""
    args = [str(v) for v in (cand.time_cost, cand.memory_kib, cand.parallelism, k)]
    # Our own interpreter running this very file: no untrusted input reaches the command.
    proc = subprocess.run(  # noqa: S603
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    raw = json.loads(proc.stdout)
    return MemoryCase(
        concurrency=int(raw["concurrency"]),
        base_rss_kib=int(raw["base_rss_kib"]),
        peak_rss_kib=int(raw["peak_rss_kib"]),
        after_rss_kib=int(raw["after_rss_kib"]),
        burst_wall_ms=[float(w) for w in raw["burst_wall_ms"]],
    )


def git_commit() -> str | None:
    """The commit being measured, if git is available."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run(  # noqa: S603
        [git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None


def machine() -> dict[str, str | int | None]:
    """What the numbers were measured on; absolute times only mean something next to this."""
    cpu = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pwdlib": version("pwdlib"),
        "argon2-cffi": version("argon2-cffi"),
        "commit": git_commit(),
    }


def drain_estimates(res: Result) -> dict[str, float]:
    """Seconds for a queue of FLOOD_LOGINS logins to drain at DEFAULT_CONCURRENCY."""
    waves = FLOOD_LOGINS / DEFAULT_CONCURRENCY
    k2 = next(m for m in res.memory if m.concurrency == DEFAULT_CONCURRENCY)
    return {
        "from_median_verify_s": waves * res.verify_stats.median_ms / 1000,
        "from_measured_k2_wall_s": waves * statistics.median(k2.burst_wall_ms) / 1000,
    }


def projected_peak_bytes(res: Result) -> int:
    """A ~100 MB base process plus the measured peak increase at DEFAULT_CONCURRENCY hashes."""
    k2 = next(m for m in res.memory if m.concurrency == DEFAULT_CONCURRENCY)
    return ASSUMED_BASE_BYTES + k2.peak_increase_kib * KIB


def render_table(results: list[Result], info: dict[str, str | int | None], rounds: int) -> str:
    """The human-readable report."""
    base = next(r for r in results if r.candidate.key == BASELINE_KEY)
    lines = [
        f"Argon2id candidates — {info['date']}, {info['cpus']} CPUs ({info['cpu']}), "
        f"Python {info['python']}, pwdlib {info['pwdlib']}, argon2-cffi {info['argon2-cffi']}, "
        f"commit {info['commit']}",
        f"{rounds} interleaved rounds per candidate after warm-up; times in ms; "
        f"x base = median verify / {BASELINE_KEY} median verify (same run)",
        "",
        f"{'candidate':<22}{'t':>3}{'m KiB':>7}{'p':>3}"
        f"{'hash med':>10}{'p90':>7}{'verify med':>12}{'p10':>7}{'p90':>7}{'x base':>8}",
    ]
    for r in results:
        c, h, v = r.candidate, r.hash_stats, r.verify_stats
        lines.append(
            f"{c.label:<22}{c.time_cost:>3}{c.memory_kib:>7}{c.parallelism:>3}"
            f"{h.median_ms:>10.1f}{h.p90_ms:>7.1f}{v.median_ms:>12.1f}{v.p10_ms:>7.1f}"
            f"{v.p90_ms:>7.1f}{v.median_ms / base.verify_stats.median_ms:>8.2f}"
        )
    lines += [
        "",
        "Peak RSS increase (MiB) with K hashes at once, one fresh process per K; "
        "'left' = RSS still held after the bursts; wall = median ms of one K-burst",
        f"{'candidate':<22}{'K=1':>7}{'K=2':>7}{'K=4':>7}{'left K=2':>10}"
        f"{'wall K=1':>10}{'K=2':>7}{'K=4':>7}{'100MB+K=2':>11}{'drain 64':>10}{'(K=2 wall)':>12}",
    ]
    for r in results:
        by_k = {m.concurrency: m for m in r.memory}
        peaks = "".join(f"{by_k[k].peak_increase_kib / KIB:>7.1f}" for k in CONCURRENCY_LEVELS)
        walls = [statistics.median(by_k[k].burst_wall_ms) for k in CONCURRENCY_LEVELS]
        drain = drain_estimates(r)
        lines.append(
            f"{r.candidate.label:<22}{peaks}{by_k[2].retained_kib / KIB:>10.1f}"
            f"{walls[0]:>10.0f}{walls[1]:>7.0f}{walls[2]:>7.0f}"
            f"{projected_peak_bytes(r) / 1e6:>9.0f}MB"
            f"{drain['from_median_verify_s']:>9.1f}s{drain['from_measured_k2_wall_s']:>11.1f}s"
        )
    lines += [
        "",
        f"100MB+K=2: assumed ~100 MB base process + measured K=2 peak increase "
        f"(budget {PROCESS_BUDGET_BYTES / 1e6:.0f} MB, NFR-PERF-4).",
        f"drain 64: {FLOOD_LOGINS} queued logins / concurrency {DEFAULT_CONCURRENCY} "
        f"x median verify — the last login's wait under a flood. (K=2 wall): the same from "
        f"the measured K=2 burst, which is slower when 2 x p lanes exceed the CPUs.",
    ]
    return "\n".join(lines)


def to_json(results: list[Result], info: dict[str, str | int | None], rounds: int) -> str:
    """The machine-readable report."""
    out = {
        "machine": info,
        "rounds": rounds,
        "baseline": BASELINE_KEY,
        "results": [
            {
                **asdict(r),
                "memory": [
                    {**asdict(m), "peak_increase_kib": m.peak_increase_kib} for m in r.memory
                ],
                "drain_64_logins": drain_estimates(r),
                "projected_peak_bytes_at_concurrency_2": projected_peak_bytes(r),
            }
            for r in results
        ],
    }
    return json.dumps(out, indent=2)


def main() -> None:
    """Parse arguments, measure every candidate, print the table (and JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument(
        "--json", action="store_true", help="write JSON to stdout (the table goes to stderr)"
    )
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        child_memory_case(*args.child)
        return
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (15 or more for a meaningful p90)")

    info = machine()
    info["loadavg_before"] = Path("/proc/loadavg").read_text().strip()
    cands = candidates()
    timings = measure_timings(cands, args.rounds, args.warmup)
    results = [
        Result(
            candidate=c,
            hash_stats=timings[c.key][0],
            verify_stats=timings[c.key][1],
            memory=[measure_memory(c, k) for k in CONCURRENCY_LEVELS],
        )
        for c in cands
    ]
    info["loadavg_after"] = Path("/proc/loadavg").read_text().strip()

    table = render_table(results, info, args.rounds)
    if args.json:
        print(table, file=sys.stderr)
        print(to_json(results, info, args.rounds))
    else:
        print(table)
        print(f"\nload average before: {info['loadavg_before']}, after: {info['loadavg_after']}")


if __name__ == "__main__":
    main()
