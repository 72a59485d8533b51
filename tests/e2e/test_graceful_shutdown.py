"""SIGTERM on a real server: drain (not ready, still serving), finish in-flight work, exit 0."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.e2e.conftest import free_port, start_app_server
from tests.factories import DEFAULT_PASSWORD, unique_email

DRAIN_SECONDS = 1.5
GRACE_SECONDS = 10


@pytest.mark.usefixtures("migrated_database")
def test_sigterm_drains_then_finishes_the_slow_request_and_exits_0() -> None:
    port = free_port()
    # A deliberately expensive Argon2id makes registration a genuinely slow request (~1-2 s).
    server = start_app_server(
        port,
        env={
            "ARGON2_TIME_COST": "10",
            "ARGON2_MEMORY_KIB": "262144",
            "DRAIN_SECONDS": str(DRAIN_SECONDS),
            "GRACEFUL_SHUTDOWN_SECONDS": str(GRACE_SECONDS),
        },
    )
    url = server.base_url
    slow: dict[str, object] = {}

    def register() -> None:
        started = time.monotonic()
        response = httpx.post(
            f"{url}/api/v1/auth/register",
            json={"email": unique_email("slow"), "password": DEFAULT_PASSWORD, "full_name": "S"},
            timeout=30,
        )
        slow.update(status=response.status_code, seconds=time.monotonic() - started)

    assert httpx.get(f"{url}/health/ready").status_code == 200
    worker = threading.Thread(target=register)
    worker.start()
    time.sleep(0.3)  # the registration is now hashing inside the server
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)

    time.sleep(0.3)
    draining_ready = httpx.get(f"{url}/health/ready")
    draining_live = httpx.get(f"{url}/health/live")
    worker.join(timeout=30)
    _, log = server.wait(timeout=GRACE_SECONDS + DRAIN_SECONDS + 15)
    exit_seconds = time.monotonic() - sigterm_at

    assert draining_ready.status_code == 503, log  # not ready while draining...
    assert draining_ready.json()["detail"] == "Not ready: shutting down."
    assert draining_live.status_code == 200  # ...yet still serving
    assert slow["status"] == 201, log  # the in-flight request completed
    assert server.process.returncode == 0, log
    assert exit_seconds < DRAIN_SECONDS + GRACE_SECONDS
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health/live", timeout=1)  # new connections are refused
    assert '"event":"draining"' in log
    assert '"event":"shutdown_complete"' in log
