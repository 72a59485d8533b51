"""Cached `GET /accounts/{id}` next to a bare `GET /health/live`, served the same way (SPEC §4).

Method (SPEC §4): one API process (`python -m app.server`, uvloop + httptools, no access log)
pinned to CPU 0; `wrk -t1 -c64` pinned to CPU 1; 5 s warm-up, then the measured run. Both
endpoints are measured in the same invocation and reported as ratios, because absolute
numbers drift on shared machines. The account read is authenticated, rate-limited (with a
limit high enough never to refuse) and cached.

    .venv/bin/python bench/read_vs_bare.py [--seconds 30] [--connections 64]

Needs `wrk` (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import httpx
from harness import (
    API,
    HASHING_ENV_PREFIXES,
    RAISED_RATE_LIMITS,
    BenchFailedError,
    free_port,
    migrate,
    new_database_name,
    server_environment,
    sign_up,
    start_server,
    stop_server,
    throwaway_database,
)

# uvloop + httptools, no access log; it reads its port from PORT.
SERVER_COMMAND = (sys.executable, "-m", "app.server")
SERVER_CPU = 0


def wrk(url: str, *, seconds: int, connections: int, token: str | None) -> tuple[float, float]:
    """Run wrk pinned to CPU 1; return (requests per second, p99 latency in ms)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    taskset = shutil.which("taskset")
    if taskset:
        command = [taskset, "-c", "1", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if p99 is None:
        raise BenchFailedError(f"no latency distribution in wrk output:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise BenchFailedError(f"{non_2xx.group(1)} non-2xx responses from {url}")
    return rps, float(p99.group(1)) * scale


async def prepare(base_url: str) -> tuple[str, str]:
    """A user with one account; return the access token and the account's URL."""
    async with httpx.AsyncClient(timeout=30) as client:
        _, _, token = await sign_up(client, base_url)
        opened = await client.post(
            f"{base_url}{API}/accounts",
            json={"currency": "EUR", "name": "bench"},
            headers={"Authorization": f"Bearer {token}"},
        )
        if opened.status_code != 201:
            raise BenchFailedError(f"open account: {opened.status_code} {opened.text}")
        return token, f"{base_url}{API}/accounts/{opened.json()['id']}"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both endpoints side by side and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    process = None
    with (
        throwaway_database(new_database_name()) as database_url,
        tempfile.TemporaryFile("w+") as log,
    ):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        try:
            migrate(database_url)
            env = server_environment(
                database_url,
                {"PORT": str(port), "DRAIN_SECONDS": "0"},
                stripped_prefixes=HASHING_ENV_PREFIXES,
                bench_env=RAISED_RATE_LIMITS,
            )
            process = start_server(SERVER_COMMAND, port, env, SERVER_CPU, log)
            token, account_url = asyncio.run(prepare(base_url))
            results = {}
            for label, url, auth in (
                ("GET /health/live (bare)", f"{base_url}/health/live", None),
                ("GET /accounts/{id} (auth, rate-limited, cached)", account_url, token),
            ):
                wrk(url, seconds=5, connections=args.connections, token=auth)  # warm-up
                results[label] = wrk(
                    url, seconds=args.seconds, connections=args.connections, token=auth
                )
            bare_rps, bare_p99 = results["GET /health/live (bare)"]
            print(f"wrk -t1 -c{args.connections} -d{args.seconds}s; server on CPU 0, wrk on CPU 1")
            print(
                f"{'endpoint':50} {'req/s':>10} {'p99 ms':>9} {'rps ratio':>10} {'p99 ratio':>10}"
            )
            for label, (rps, p99) in results.items():
                print(
                    f"{label:50} {rps:10.0f} {p99:9.2f} "
                    f"{rps / bare_rps:10.2f} {p99 / bare_p99:10.2f}"
                )
            print("targets (SPEC §4): rps ratio >= 0.50, p99 ratio <= 3.0")
            return 0
        finally:
            if process is not None:
                stop_server(process)


if __name__ == "__main__":
    sys.exit(main())
