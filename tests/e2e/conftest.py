"""End-to-end helpers: real server processes on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.factories import DEFAULT_PASSWORD, unique_email

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 30.0

pytestmark = pytest.mark.e2e


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_log(log: IO[str]) -> str:
    """What a child process has written to `log` so far, read without moving the file offset.

    The child's stdout shares the file's offset with `log`: a seek(0) here while it runs would
    make its next line overwrite the start of the file.
    """
    size = os.fstat(log.fileno()).st_size
    return os.pread(log.fileno(), size, 0).decode(errors="replace")


def read_log_once_it_has(log: IO[str], needle: str, within: float = 5.0) -> str:
    """`read_log` once it holds `needle`, or after `within` seconds (a request's access line
    is written just after its response is sent: the client may read the log before it)."""
    deadline = time.monotonic() + within
    while needle not in (text := read_log(log)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return text


@dataclass
class Server:
    """A running process serving the API at `base_url`, logging into a temporary file.

    A file, not a pipe: a chatty server would fill a pipe nobody reads yet and block.
    """

    process: subprocess.Popen[str]
    base_url: str
    log: IO[str]
    final_output: str | None = None

    def output(self) -> str:
        """Everything the process has logged so far (stdout and stderr)."""
        if self.final_output is not None:
            return self.final_output
        return read_log(self.log)

    def wait(self, timeout: float) -> tuple[int, str]:
        """Wait for the process to exit; return its exit code and its whole log."""
        code = self.process.wait(timeout=timeout)
        if self.final_output is None:
            self.final_output = self.output()
            self.log.close()
        return code, self.final_output

    def stop(self, timeout: float = 20.0) -> tuple[int, str]:
        """SIGTERM, wait, and return the exit code and everything it logged.

        `python -m app.server` exits 0 once its shutdown is complete; a process that re-raises
        the SIGTERM it handled (plain uvicorn does) exits -15 here (143 in a shell).
        """
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown hangs
            self.process.kill()
            self.process.wait()
            pytest.fail(f"server did not stop within {timeout}s:\n{self.output()}")


# Every server started: one whose test failed before stopping it is killed afterwards.
_started: list[Server] = []


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test() -> Iterator[None]:
    """Kill what a failed test left running (it kept a port, a pool and a CPU busy).

    Only servers started after this fixture: wider-scoped fixtures (a module's server) start
    theirs before it and stop them themselves.
    """
    before = len(_started)
    yield
    while len(_started) > before:
        server = _started.pop()
        if server.process.poll() is None:
            server.process.kill()
            _, log = server.wait(timeout=10)  # also closes the log file
            # The test failed before reading it: show the server's side (pytest prints a
            # failed test's captured stderr), the first place to look for why.
            print(f"server left running, its log:\n{log[-20_000:]}", file=sys.stderr)


def start_server(command: Sequence[str], port: int, env: dict[str, str] | None = None) -> Server:
    """Start `command` and wait until /health/live answers (or fail with its output)."""
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the Server
    process = subprocess.Popen(  # noqa: S603 - a fixed command built by the tests
        list(command),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    _started.append(server)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited early ({process.returncode}):\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/health/live", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    code, err = server.stop()
    pytest.fail(f"server not live after {STARTUP_TIMEOUT_SECONDS}s ({code}):\n{err}")


def start_app_server(port: int, env: dict[str, str] | None = None) -> Server:
    """`python -m app.server` on `port`, as the image runs it (no drain: tests stop it at once)."""
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "DRAIN_SECONDS": "0", **(env or {})}
    return start_server([sys.executable, "-m", "app.server"], port, env=settings)


@pytest.fixture
def server(migrated_database: str) -> Iterator[Server]:
    """A real API process on the migrated test database, started as the image starts it."""
    port = free_port()
    running = start_app_server(port)
    yield running
    running.stop()


def new_customer(client: httpx.Client) -> tuple[dict[str, str], str]:
    """Register and sign in a user with one EUR account: their auth header and the account id."""
    email = unique_email("e2e")
    client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "E2E Test"},
    ).raise_for_status()
    tokens = client.post(
        "/api/v1/auth/login", data={"username": email, "password": DEFAULT_PASSWORD}
    ).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    account = client.post(
        "/api/v1/accounts", json={"currency": "EUR", "name": "Main"}, headers=auth
    ).json()
    return auth, str(account["id"])


def request_deposit(
    client: httpx.Client, auth: dict[str, str], account_id: str, amount: int, **headers: str
) -> str:
    """POST /deposits (202, pending); the deposit id."""
    response = client.post(
        "/api/v1/deposits",
        json={"account_id": account_id, "amount": amount, "currency": "EUR"},
        headers={**auth, "Idempotency-Key": str(uuid.uuid4()), **headers},
    )
    assert response.status_code == 202, response.text
    deposit_id: str = response.json()["id"]
    return deposit_id
