"""`make image-smoke`: docker/Dockerfile built for real with podman and run as it ships (SPEC §7).

There is no Docker engine and no registry on these machines; Debian's podman builds and runs
OCI images without either. The steps, each timed:

1. **Base image.** The Dockerfile's `FROM` image cannot be pulled, so one is made: Debian
   (`debootstrap --variant=minbase`, from the mirror of apt's own sources) with python3 and
   venv, imported and tagged with the Dockerfile's base name. It is Debian's Python (3.13 in
   trixie), not the official image's 3.12: what is tested is the Dockerfile, its stages and the
   running service, not that exact interpreter. The machine's CA bundle goes in, since
   outbound HTTPS here passes a proxy with its own CA (pip in the build stage needs it). Kept in
   podman's store and reused while `BASE_RECIPE` is unchanged.
2. **Build** docker/Dockerfile with `--pull=never`; the image must run as uid 10001 and hold no
   compiler, no tests and no dev tools.
3. **Run** from that image, against this machine's PostgreSQL and Redis (a database of its
   own, Redis database 13): the migrations, the seed, the API (read-only root filesystem, every
   capability dropped, no new privileges) and a worker. The API's HEALTHCHECK passes
   (`podman healthcheck run`: without systemd podman cannot schedule it), `/health/ready`
   answers 200, a payment succeeds and a deposit is completed by the worker.
4. **Stop** the API with `podman stop` while a payment is in flight (its body half sent): the
   payment is still answered 201 and the container exits 0; then the worker exits 0.

Podman's quirks on these machines, all handled here: crun rejects the cgroup layout (runc is
used), its default ulimits cannot be applied (set in a containers.conf of our own, named by
CONTAINERS_CONF; nothing is written under /etc), and there is no systemd for healthchecks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.core.config import get_settings
from tools.drills import DrillError, admin_sql, call, free_port, http_status, require, wait_for

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
CACHE = ROOT / ".cache" / "podman"
IMAGE = "localhost/fastapi-ledger:smoke"
BACKUP_IMAGE = "localhost/fastapi-ledger-backup:smoke"
SUITE = "trixie"
PACKAGES = ["python3", "python3-venv", "python-is-python3", "ca-certificates"]
# The base is rebuilt when this changes (it is stored as a label on the image).
BASE_RECIPE = f"debootstrap minbase {SUITE} {' '.join(PACKAGES)} + host CA bundle"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
APP_UID = "10001"
# The containers get a network of their own (slirp4netns) from which this machine's loopback,
# where PostgreSQL and Redis listen, is 10.0.2.2; the API's port 8000 is published on loopback.
NETWORK = "--network=slirp4netns:allow_host_loopback=true"
HOST_FROM_CONTAINER = "10.0.2.2"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class Smoke:
    """The smoke run's timeline, containers and database."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.token = secrets.token_hex(4)
        self.containers: list[str] = []
        settings = get_settings()
        self.database = f"ledger_smoke_{self.token}"
        url = make_url(str(settings.DATABASE_URL)).set(database=self.database)
        self.database_url = url.render_as_string(hide_password=False)
        inside = url.set(host=HOST_FROM_CONTAINER).render_as_string(hide_password=False)
        redis = make_url(str(settings.REDIS_URL)).set(host=HOST_FROM_CONTAINER, database="13")
        self.env = {
            "DATABASE_URL": inside,
            "REDIS_URL": redis.render_as_string(hide_password=False),
            "ENVIRONMENT": "development",  # the seed funds a demo user outside production
            "LOG_FORMAT": "json",
            "TASK_QUEUE": f"ledger:smoke:{self.token}",
            "PSP_FAKE_LATENCY_MS": "50",
            "OUTBOX_POLL_SECONDS": "0.2",
            "DRAIN_SECONDS": "2",
        }

    def note(self, what: str) -> None:
        """Print one line of the timeline."""
        print(f"  {time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def run(self, *command: str, env: dict[str, str] | None = None) -> str:
        """`podman run --rm` of the image on the host's network; its output (fails loudly)."""
        return podman(
            "run", "--rm", NETWORK, *env_flags({**self.env, **(env or {})}), IMAGE, *command,
        )  # fmt: skip

    def start(
        self, name: str, *command: str, env: dict[str, str] | None = None, publish: int = 0
    ) -> str:
        """A detached container as compose runs one: read-only, no capabilities.

        `publish`: the loopback port the container's 8000 is published on (0: none).
        """
        container = f"ledger-smoke-{name}-{self.token}"
        ports = [f"--publish=127.0.0.1:{publish}:8000"] if publish else []
        podman(
            "run", "--detach", "--name", container, NETWORK, *ports,
            "--read-only", "--tmpfs=/tmp", "--cap-drop=ALL",
            "--security-opt=no-new-privileges", "--health-interval=disable",
            *env_flags({**self.env, **(env or {})}), IMAGE, *command,
        )  # fmt: skip
        self.containers.append(container)
        return container


def podman(*args: str, check: bool = True) -> str:
    """Run podman; its stdout. DrillError with its output if it fails and `check`."""
    result = subprocess.run(  # noqa: S603 - podman with arguments built here
        ["podman", *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf")},
    )
    if check and result.returncode != 0:
        raise DrillError(f"podman {' '.join(args[:3])} … failed:\n{result.stderr[-3000:]}")
    return result.stdout


def env_flags(env: dict[str, str]) -> list[str]:
    """`--env` flags; values never land in a shell."""
    return [f"--env={key}={value}" for key, value in env.items()]


def dockerfile_base() -> str:
    """The one image every FROM of the Dockerfile names (stages aside), fully qualified."""
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE.read_text(), re.M | re.I)
    names = {stage for _, stage in stages if stage}
    bases = {image for image, _ in stages if image not in names}
    require(len(bases) == 1, f"the Dockerfile's stages start from several images: {bases}")
    (base,) = bases
    return base if "/" in base else f"docker.io/library/{base}"


def apt_mirror() -> str:
    """The Debian mirror apt itself uses here (deb822 sources or sources.list)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), re.MULTILINE):
            if "security" not in uri:
                return str(uri)
    classic = Path("/etc/apt/sources.list")
    if classic.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", classic.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    raise DrillError("no Debian mirror in apt's sources")


def base_image(smoke: Smoke, name: str) -> None:
    """Make the base image unless podman has it from the same recipe."""
    recipe = hashlib.sha256(BASE_RECIPE.encode() + HOST_CA.read_bytes()).hexdigest()[:16]
    found = podman(
        "image", "inspect", "--format", '{{index .Labels "fastapi-ledger.base"}}', name,
        check=False,
    ).strip()  # fmt: skip
    if found == recipe:
        smoke.note(f"base image {name}: cached (recipe {recipe})")
        return
    with tempfile.TemporaryDirectory(prefix="smoke-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        mirror = apt_mirror()
        subprocess.run(  # noqa: S603 - fixed command
            [  # noqa: S607
                "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                SUITE, str(rootfs), mirror,
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        for waste in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"):
            shutil.rmtree(rootfs / waste, ignore_errors=True)
        shutil.copyfile(HOST_CA, rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        archive = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)  # noqa: S603, S607
        podman(
            "import",
            "--change", 'CMD ["python3"]',
            "--change", "ENV LANG=C.UTF-8",
            "--change", f"ENV PIP_CERT={HOST_CA}",
            "--change", f"LABEL fastapi-ledger.base={recipe}",
            str(archive), name,
        )  # fmt: skip
    smoke.note(f"base image {name}: Debian {SUITE} from {mirror}, python3 + venv")


def check_image() -> None:
    """Non-root with the fixed uid, no compiler, no tests, no dev tools."""
    image = json.loads(podman("image", "inspect", IMAGE))[0]
    user = image["Config"].get("User", "")
    require(user.split(":")[0] == APP_UID, f"user {user!r}")
    require(image.get("Healthcheck"), "the HEALTHCHECK was lost (build with --format docker)")
    found = podman(
        "run", "--rm", "--entrypoint=sh", IMAGE, "-c",
        "for tool in gcc cc make pytest ruff mypy; do command -v $tool; done; "
        "ls -d /app/tests /app/bench 2>/dev/null; true",
    ).split()  # fmt: skip
    require(not found, f"the image holds what it must not: {found}")


def check_backup_image() -> None:
    """The backup job's image: pg_dump of the major version compose's PostgreSQL runs."""
    podman(
        "build", "--pull=never", "--format=docker", "--target=backup",
        "--file", str(DOCKERFILE), "--tag", BACKUP_IMAGE, str(ROOT),
    )  # fmt: skip
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    server = re.match(r"postgres:(\d+)", compose["services"]["postgres"]["image"])
    require(server, "compose's postgres image has no major version")
    assert server is not None  # noqa: S101 - for the type checker
    client = podman("run", "--rm", "--entrypoint=pg_dump", BACKUP_IMAGE, "--version")
    require(
        re.search(rf"\) {server.group(1)}\.", client),
        f"the backup image's {client.strip()!r} is not PostgreSQL {server.group(1)}",
    )


def in_flight_payment(
    base: str, auth: dict[str, str], payment: dict[str, object]
) -> tuple[socket.socket, bytes]:
    """A payment whose body is half sent (the socket, the rest): in flight until the rest."""
    port = int(base.rsplit(":", 1)[1])
    body = json.dumps(payment).encode()
    head = (
        "POST /api/v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth['Authorization']}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head + body[:10])
    return sock, body[10:]


def finish(sock: socket.socket, rest: bytes) -> int:
    """Send the rest of the body; the status the server answers with."""
    sock.sendall(rest)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    require(match, f"no HTTP answer: {answer[:200]!r}")
    assert match is not None  # noqa: S101 - for the type checker
    return int(match.group(1))


def exit_code(container: str) -> int:
    """The exit code of a stopped container."""
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container).strip())


def main() -> int:
    """Build, run, pay, stop; 0 if every step held."""
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            print(f"image-smoke needs {tool}: make image-smoke installs it", file=sys.stderr)
            return 2
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "containers.conf").write_text(CONTAINERS_CONF)
    smoke = Smoke()
    print(f"image smoke: {DOCKERFILE.relative_to(ROOT)} built with podman and run")
    try:
        base_image(smoke, dockerfile_base())
        build = time.monotonic()
        podman(
            "build", "--pull=never", "--format=docker", "--file", str(DOCKERFILE),
            "--tag", IMAGE, str(ROOT),
        )  # fmt: skip
        smoke.note(f"built {IMAGE} in {time.monotonic() - build:.0f} s")
        check_image()
        smoke.note(f"runs as uid {APP_UID}; no compiler, no tests, no dev tools inside")
        check_backup_image()
        smoke.note("backup target built: its pg_dump matches compose's PostgreSQL major version")

        asyncio.run(admin_sql(smoke.database_url, f'CREATE DATABASE "{smoke.database}"'))
        smoke.run("alembic", "upgrade", "head")
        smoke.note("migrations applied from the image (alembic upgrade head)")
        smoke.run("python", "-m", "app.cli", "seed")
        smoke.note("seeded from the image (admin, funded demo user)")

        port = free_port()
        api = smoke.start("api", publish=port)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_status(f"{base}/health/ready") == 200, 60, "ready API container")
        podman("healthcheck", "run", api)
        uid = podman("exec", api, "id", "-u").strip()
        require(uid == APP_UID, f"the API runs as uid {uid}")
        smoke.note(f"API container ready; its HEALTHCHECK passes; uid {uid}, read-only root")
        worker = smoke.start(
            "worker", "python", "-m", "app.run_worker", "--workers", "1",
            "--wait-tasks-timeout", "5",
        )  # fmt: skip

        settings = get_settings()
        form = {"username": settings.DEMO_USER_EMAIL}
        form["password"] = settings.DEMO_USER_PASSWORD.get_secret_value()
        status, tokens = call(base, "POST", "/api/v1/auth/login", {"form": form})
        require(status == 200, f"demo login: {status} {tokens}")
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        demo = call(base, "GET", "/api/v1/accounts", **auth)[1]["items"][0]
        savings = call(base, "POST", "/api/v1/accounts", {"currency": "EUR", "name": "S"}, **auth)
        require(savings[0] == 201, f"account: {savings}")
        payment = {
            "source_account_id": demo["id"],
            "destination_account_id": savings[1]["id"],
            "amount": 1250,
            "currency": "EUR",
        }
        key = {"Idempotency-Key": str(uuid.uuid4())}
        paid = call(base, "POST", "/api/v1/payments", payment, **auth, **key)
        require(paid[0] == 201 and paid[1]["status"] == "succeeded", f"payment: {paid}")
        smoke.note("a payment through the container: 201 succeeded")
        deposit = {"account_id": savings[1]["id"], "amount": 5000, "currency": "EUR"}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        made = call(base, "POST", "/api/v1/deposits", deposit, **auth, **key)
        require(made[0] == 202, f"deposit: {made}")
        wait_for(
            lambda: (
                call(base, "GET", f"/api/v1/deposits/{made[1]['id']}", **auth)[1]["status"]
                == "succeeded"
            ),
            60,
            "the deposit completed by the worker container",
        )
        balance = call(base, "GET", f"/api/v1/accounts/{savings[1]['id']}", **auth)[1]
        require(balance["balance"] == 1250 + 5000, f"balance: {balance}")
        smoke.note("a deposit completed by the worker container; balance 6250")

        sock, rest = in_flight_payment(base, auth, payment)
        stopping = time.monotonic()
        stopper = threading.Thread(target=podman, args=("stop", "--time=40", api))
        stopper.start()
        time.sleep(4)  # past the 2 s drain: uvicorn's graceful shutdown is under way
        answered = finish(sock, rest)
        stopper.join(timeout=60)
        took = time.monotonic() - stopping
        require(answered == 201, f"the in-flight payment was answered {answered}")
        require(exit_code(api) == 0, f"the API exited {exit_code(api)}")
        smoke.note(
            f"podman stop mid-request: the payment answered {answered}; exit 0 ({took:.0f} s)"
        )
        podman("stop", "--time=30", worker)
        require(exit_code(worker) == 0, f"the worker exited {exit_code(worker)}")
        smoke.note("worker container stopped: exit 0")
        print("image smoke: OK")
        return 0
    except (DrillError, subprocess.CalledProcessError) as exc:
        print(f"image smoke FAILED: {exc}", file=sys.stderr)
        for container in smoke.containers:
            print(f"--- last lines of {container}", file=sys.stderr)
            print(podman("logs", "--tail=20", container, check=False), file=sys.stderr)
        return 1
    finally:
        for container in smoke.containers:
            podman("rm", "--force", container, check=False)
        drop = f'DROP DATABASE IF EXISTS "{smoke.database}" WITH (FORCE)'
        asyncio.run(admin_sql(smoke.database_url, drop))


if __name__ == "__main__":
    sys.exit(main())
