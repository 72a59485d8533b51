"""After an overload the process goes idle within seconds, and still stops within its bounds.

The overload: many more concurrent logins (each an Argon2id hash) than the process can serve,
from clients that give up after two seconds. Admission control answers the excess at once with
503 instead of queueing it without limit, so no request is worked on long after its client
left, and the CPU comes back to idle as soon as the load stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, start_app_server
from tests.factories import DEFAULT_PASSWORD, unique_email

CLIENTS = 150
FLOOD_SECONDS = 4.0
CLIENT_TIMEOUT = 2.0
WAIT_SECONDS = 1.0
GRACE_SECONDS = 5
HIGH = "1000000/minute"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _causes(exc: BaseException) -> str:
    chain: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 6:
        chain.append(repr(current))
        current = current.__cause__ or current.__context__
    return " <- ".join(chain)


async def flood(url: str, email: str) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + FLOOD_SECONDS
    # One connection per request, as from many separate clients: the subject here is the
    # server's overload, not connection reuse. With kept-alive connections a client rarely
    # (2 of ~280 requests, in CI only) wrote into a connection the server had just closed,
    # without any server log line; that race is outside what this test measures.
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:

        async def one_client() -> None:
            while time.monotonic() < deadline:
                try:
                    response = await client.post(
                        f"{url}/api/v1/auth/login",
                        data={"username": email, "password": DEFAULT_PASSWORD},
                    )
                    key = str(response.status_code)
                except httpx.TimeoutException:
                    key = "client gave up"
                except httpx.TransportError as exc:
                    # Not an expected outcome: recorded with its cause (errno and all) so the
                    # assertion below names what the connection died of, instead of the flood
                    # aborting with a bare "All connection attempts failed".
                    key = _causes(exc)
                outcomes[key] = outcomes.get(key, 0) + 1

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return outcomes


@pytest.mark.usefixtures("migrated_database")
def test_after_an_overload_the_process_is_idle_within_seconds_and_stops_cleanly() -> None:
    port = free_port()
    server = start_app_server(
        port,
        env={
            # Production-like hashing: about 20 logins a second is all this process can do.
            "ARGON2_TIME_COST": "2",
            "ARGON2_MEMORY_KIB": "65536",
            "MAX_CONCURRENT_REQUESTS": "8",
            "ADMISSION_QUEUE_LIMIT": "16",
            "ADMISSION_WAIT_SECONDS": str(WAIT_SECONDS),
            "GRACEFUL_SHUTDOWN_SECONDS": str(GRACE_SECONDS),
            "RATE_LIMIT_LOGIN_PER_IP": HIGH,
            "RATE_LIMIT_LOGIN_PER_ACCOUNT": HIGH,
            "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": HIGH,
        },
    )
    email = unique_email("flood")
    registered = httpx.post(
        f"{server.base_url}/api/v1/auth/register",
        json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "Flood"},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text

    outcomes = asyncio.run(flood(server.base_url, email))
    load_stopped = time.monotonic()
    pid = server.process.pid
    idle_after: float | None = None
    while time.monotonic() - load_stopped < 15:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.1:  # under a tenth of a core: idle
            idle_after = time.monotonic() - load_stopped
            break
    live = httpx.get(f"{server.base_url}/health/live", timeout=2)
    stop_requested = time.monotonic()
    code, log = server.stop(timeout=GRACE_SECONDS + 15)
    stop_seconds = time.monotonic() - stop_requested

    assert outcomes.get("200", 0) > 0, outcomes
    assert outcomes.get("503", 0) > 0, outcomes  # the excess was refused, not queued forever
    # The server's side of any connection it cut (refusals, uvicorn's warnings), for diagnosis:
    # a client once saw EPIPE writing to a kept-alive connection the server had closed.
    cut = [
        line
        for line in log.splitlines()
        if ("request_refused" in line or '"warning"' in line) and "admission" not in line
    ]
    assert set(outcomes) <= {"200", "503", "client gave up"}, (outcomes, cut[-30:])
    assert idle_after is not None, outcomes
    assert idle_after <= 10, (idle_after, outcomes)
    assert live.status_code == 200
    assert code == 0, log
    assert stop_seconds < GRACE_SECONDS + 5
    durations = [
        line["duration_ms"]
        for line in map(json.loads, filter(lambda text: text.startswith("{"), log.splitlines()))
        if line.get("event") == "request" and line.get("path") == "/api/v1/auth/login"
    ]
    assert len(durations) >= outcomes["200"], log[-2000:]
    # No request was worked on long after its client left: its wait, its patience, a margin.
    assert max(durations) < (WAIT_SECONDS + CLIENT_TIMEOUT + 2) * 1000, max(durations)
