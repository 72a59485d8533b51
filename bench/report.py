"""What `make bench` writes: the machine it ran on, and its rows as a markdown table.

`write_section` replaces only the part of docs/performance.md between the BEGIN/END markers,
so the hand-written parts around it (how to read the table, the "before" and "after" tables
of earlier runs) stay as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness import ROOT

BEGIN_MARK = "<!-- BEGIN make bench: written by bench/suite.py, edits here are overwritten -->"
END_MARK = "<!-- END make bench -->"
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "hiredis",
)


def _run(*command: str) -> str:
    """A command's stdout, or '' when it cannot run."""
    if shutil.which(command[0]) is None:
        return ""
    completed = subprocess.run(  # noqa: S603 - fixed commands
        list(command), cwd=ROOT, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    """HEAD, plus a fingerprint of uncommitted changes to what runs (app/, migrations/)."""
    head = _run("git", "rev-parse", "--short", "HEAD") or "unknown"
    pending = _run("git", "status", "--porcelain", "--", "app", "migrations")
    if not pending:
        return head
    diff = _run("git", "diff", "HEAD", "--", "app", "migrations")
    fingerprint = hashlib.sha256((pending + diff).encode()).hexdigest()[:10]
    return f"{head} + uncommitted app changes {fingerprint}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


@dataclass
class Context:
    """Everything an absolute number needs next to it."""

    command: str  # markdown: the command in backticks
    quick: bool
    seconds: int
    warmup: int
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    nproc: str = field(default_factory=lambda: _run("nproc") or str(os.cpu_count()))
    cpu: str = field(default_factory=cpu_model)
    load_before: str = field(default_factory=load_average)
    load_after: str = ""
    commit: str = field(default_factory=git_commit)
    versions: str = ""
    pinning: str = ""
    duration: str = ""

    def collect_versions(self, postgres: str) -> None:
        """Python, the serving stack, wrk, pgbench and the PostgreSQL server."""
        parts = [f"Python {platform.python_version()}"]
        for package in PACKAGES:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                parts.append(f"{package} {importlib.metadata.version(package)}")
        wrk = re.search(r"wrk (\S+)", _run("wrk", "-v"))
        parts.append(f"wrk {wrk.group(1) if wrk else '?'}")
        parts.append(_run("pgbench", "--version").replace(" (PostgreSQL)", "") or "pgbench ?")
        parts.append(f"PostgreSQL server {postgres}")
        self.versions = ", ".join(parts)


@dataclass
class Row:
    """One line of the table. Figures are None where they do not apply."""

    scenario: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    compared_with: str = "—"
    ratio: str = "—"
    bar: str = "—"
    bar_met: bool | None = None
    goal: str = "—"
    goal_met: bool | None = None
    # details
    statuses: str = ""
    spread: str = ""
    stalled_seconds: int | None = None
    server_cpu: float | None = None
    server_ms_per_request: float | None = None
    postgres_cpu: float | None = None
    other_cpu: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _latency(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("PASS" if met else "MISS")


def markdown(context: Context, rows: list[Row], checks: list[str]) -> str:
    """The run as markdown: context, the main table, the details table, the money checks."""
    mode = " (--quick: a smoke run, not a measurement)" if context.quick else ""
    lines = [
        f"### Run of {context.date}{mode}",
        "",
        f"- command: {context.command} ({context.warmup} s warm-up, then {context.seconds} s "
        f"measured per scenario; the whole run took {context.duration})",
        f"- machine: `nproc` {context.nproc}, {context.cpu}; {context.pinning}",
        f"- load average (1/5/15 min): {context.load_before} before, {context.load_after} after",
        f"- commit: `{context.commit}`",
        f"- versions: {context.versions}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | compared with | ratio "
        "| bar (issue 14) | | SPEC §4 goal | |",
        "|---|--:|--:|--:|--:|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row.scenario,
            _number(row.rps),
            _latency(row.p50_ms),
            _latency(row.p99_ms),
            _number(row.errors),
            row.compared_with,
            row.ratio,
            row.bar,
            _verdict(row.bar_met),
            row.goal,
            _verdict(row.goal_met),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Details (answers/s p10-p90: the spread of the run's whole seconds; CPU in % of one "
        "core while measured; server ms/req = server CPU time per 2xx answer; other = "
        "everything but the server, PostgreSQL and the load generator):",
        "",
        "| scenario | statuses | answers/s p10-p90 | stalled s | server CPU % | server ms/req "
        "| PostgreSQL CPU % | other CPU % | peak RSS MB | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        cells = [
            row.scenario,
            row.statuses or "—",
            row.spread or "—",
            _number(row.stalled_seconds),
            _number(row.server_cpu),
            _number(row.server_ms_per_request, 2),
            _number(row.postgres_cpu),
            _number(row.other_cpu),
            _number(row.peak_rss_mb),
            row.note or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Checks after the run:", ""]
    lines += [f"- {check}" for check in checks]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the marked section of `path` (or append one) with `section`."""
    block = f"{BEGIN_MARK}\n\n{section}\n{END_MARK}"
    text = path.read_text() if path.exists() else ""
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + block + tail
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    path.write_text(text)
