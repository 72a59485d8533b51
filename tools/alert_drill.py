"""`make alert-drill`: an alert travels the whole chain on this machine, and resolves (SPEC §7).

Real processes: the API (`python -m app.server`, on a database of the drill's own) and a
worker, Prometheus and Alertmanager with the project's own rule, routing and template files —
only the addresses and the secret files' paths are changed — and one local HTTP stand-in
answering as both the Telegram Bot API and a Slack webhook.

1. Real traffic through the API (sign-ups, deposits, payments, cache reads); then every query
   of the Grafana dashboard must return data from that Prometheus, and every alert expression
   must run.
2. The API is stopped: `LedgerApiDown` must reach Telegram and Slack naming its runbook; the
   API is started again and both must get the resolved message.
3. The API is restarted on a database that refuses every connection while a client reads five
   times a second: `LedgerHigh5xxRatio` must arrive the same way, and resolve once the
   database is back.
4. The database "goes down" for the Postgres exporter too (Debian's, as the Redis one, both
   scraped from the start): `LedgerPostgresDown` must page on both channels, while the 5xx
   alert it explains fires in Prometheus but is held back by Alertmanager's inhibition (its
   API lists it suppressed, inhibited by the outage, and no message about it arrives); once
   the database is back, the outage's resolved message arrives.

It prints the timeline and exits 1 if any step misses its deadline.

Prometheus scrapes every 15 s, `LedgerApiDown` and `LedgerPostgresDown` wait 1 minute and
`LedgerHigh5xxRatio` 2 over a 2-minute rate: a run takes about 12 minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.cli import worker_command
from app.core.config import get_settings
from tools.drills import (
    DrillError,
    admin_sql,
    call,
    free_port,
    http_status,
    require,
    wait_for,
)
from tools.grafana_dashboard import QUERIES

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
ALERTMANAGER_DIR = ROOT / "docker" / "alertmanager"
ALERTMANAGER = ROOT / ".cache" / "alertmanager" / "usr" / "bin" / "prometheus-alertmanager"
DOWN = "LedgerApiDown"
ERRORS = "LedgerHigh5xxRatio"
OUTAGE = "LedgerPostgresDown"
POSTGRES_EXPORTER = "prometheus-postgres-exporter"
REDIS_EXPORTER = "prometheus-redis-exporter"
FIRE_WITHIN = 240.0  # scrape 15 s + `for: 1m` + evaluation 15 s + group_wait 10 s, with room
RESOLVE_WITHIN = 180.0  # scrape + evaluation + the page route's 1 minute group_interval
ERRORS_FIRE_WITHIN = 300.0  # two samples of the 2 m rate, `for: 2m`, evaluation, group_wait
ERRORS_RESOLVE_WITHIN = 330.0  # the 2 m rate forgetting the errors, then group_interval


@dataclass
class Message:
    """One message a stand-in received."""

    at: float
    channel: str  # telegram or slack
    text: str


@dataclass
class StandIn:
    """Telegram's `POST /bot<token>/sendMessage` and a Slack webhook, recording what arrives."""

    telegram_token: str
    slack_path: str
    messages: list[Message] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def serve(self, port: int) -> ThreadingHTTPServer:
        """Answer on 127.0.0.1:`port` in a thread."""
        drill = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload = json.loads(body or b"{}")
                if self.path == f"/bot{drill.telegram_token}/sendMessage":
                    drill.messages.append(Message(time.monotonic(), "telegram", payload["text"]))
                    # The Bot API's answer: the message as sent, in its chat.
                    chat = {"id": int(payload["chat_id"]), "type": "group"}
                    answer = {
                        "ok": True,
                        "result": {"message_id": len(drill.messages), "chat": chat, "date": 0},
                    }
                elif self.path == drill.slack_path:
                    parts = [payload.get("text", "")]
                    for attachment in payload.get("attachments", []):
                        parts += [attachment.get("title", ""), attachment.get("text", "")]
                    drill.messages.append(Message(time.monotonic(), "slack", "\n".join(parts)))
                    answer = {"ok": True}
                else:  # a wrong token or hook: the chain is misconfigured
                    drill.refused.append(self.path)
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def received(self, alert: str, status: str, since: float = 0.0) -> dict[str, Message]:
        """The first message per channel that reports `alert` in `status` (FIRING/RESOLVED).

        `since`: only messages that arrived after that time (time.monotonic()).
        """
        found: dict[str, Message] = {}
        for message in self.messages:
            if message.at < since:
                continue
            if alert in message.text and status in message.text.upper():
                found.setdefault(message.channel, message)
        return found


def prometheus_config(work: Path, *, jobs: dict[str, int], alertmanager_port: int) -> Path:
    """The project's prometheus.yml: the scraped processes' and Alertmanager's addresses local.

    `jobs`: each scrape job the drill runs and its port. The backup job of compose does not
    run in the drill: its scrape job is left out rather than pointed at nothing.
    """
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
    ]
    config["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in jobs.items()
    ]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config(work: Path, *, stand_in: StandIn, stand_in_port: int) -> Path:
    """The project's alertmanager.yml: secret files of the drill's, the APIs' address local."""
    (work / "telegram_bot_token").write_text(stand_in.telegram_token)
    (work / "slack_webhook_url").write_text(
        f"http://127.0.0.1:{stand_in_port}{stand_in.slack_path}"
    )
    config = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())
    config["templates"] = [str(ALERTMANAGER_DIR / "templates" / "*.tmpl")]
    for receiver in config["receivers"]:
        for telegram in receiver.get("telegram_configs", []):
            telegram["bot_token_file"] = str(work / "telegram_bot_token")
            telegram["api_url"] = f"http://127.0.0.1:{stand_in_port}"
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(work / "slack_webhook_url")
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Drill:
    """The drill's processes, database and timeline."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.started = time.monotonic()
        self.timeline: list[tuple[float, str]] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.api_port = free_port()
        self.database = f"ledger_drill_{secrets.token_hex(4)}"
        settings = get_settings()
        self.database_url = (
            make_url(str(settings.DATABASE_URL))
            .set(database=self.database)
            .render_as_string(hide_password=False)
        )
        # Redis database 14 of the same server: the drill's rate limits and cache are its own.
        self.redis_url = str(settings.REDIS_URL).rsplit("/", 1)[0] + "/14"
        self.api: subprocess.Popen[bytes] | None = None
        self.worker_port = free_port()
        self.postgres_exporter_port = free_port()
        self.redis_exporter_port = free_port()
        self.postgres_exporter: subprocess.Popen[bytes] | None = None
        self.queue = f"ledger:drill:{secrets.token_hex(4)}"

    @property
    def env(self) -> dict[str, str]:
        """What the API and the worker of the drill share: its database, Redis, queue."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TASK_QUEUE": self.queue,
            "PSP_FAKE_LATENCY_MS": "10",
            "OUTBOX_POLL_SECONDS": "0.2",
            # Low enough for the drill's traffic to meet it once: a 429 to count.
            "RATE_LIMIT_REGISTER": "2/minute",
            # High enough for the five reads a second of the 5xx phase to reach the database.
            "RATE_LIMIT_DEFAULT": "100000/minute",
        }

    def note(self, what: str) -> None:
        """Print and keep one line of the timeline."""
        at = time.monotonic() - self.started
        self.timeline.append((at, what))
        print(f"  {at:6.1f} s  {what}", flush=True)

    def spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process logging into the drill's folder."""
        log = (self.work / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - fixed commands
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def start_api(self, *, database_url: str | None = None) -> None:
        """Start the API on its port and wait until it answers (ready, on its own database).

        `database_url`: another database for it, such as one that refuses every connection.
        """
        env = {**self.env, "PORT": str(self.api_port), "DRAIN_SECONDS": "0"}
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        self.api = self.spawn("api", [sys.executable, "-m", "app.server"], env)
        probe = "/health/live" if database_url else "/health/ready"
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{self.api_port}{probe}") == 200,
            30,
            f"the API to answer {probe}",
        )

    def start_worker(self) -> None:
        """One worker process, its metrics on the drill's port."""
        self.spawn(
            "worker",
            worker_command(get_settings()),
            {**self.env, "WORKER_METRICS_PORT": str(self.worker_port)},
        )
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{self.worker_port}/metrics") == 200,
            30,
            "the worker's metrics",
        )

    def start_postgres_exporter(self, *, database_url: str | None = None) -> None:
        """Debian's Postgres exporter on the drill's database (or `database_url`)."""
        if self.postgres_exporter is not None:
            self.postgres_exporter.terminate()
            self.postgres_exporter.wait(timeout=15)
        url = make_url(database_url or self.database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False) + "?sslmode=disable"
        self.postgres_exporter = self.spawn(
            "postgres-exporter",
            [POSTGRES_EXPORTER, f"--web.listen-address=127.0.0.1:{self.postgres_exporter_port}"],
            {"DATA_SOURCE_NAME": dsn},
        )
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{self.postgres_exporter_port}/metrics") == 200,
            30,
            "the Postgres exporter",
        )

    def start_redis_exporter(self) -> None:
        """Debian's Redis exporter on the drill's Redis."""
        address = self.redis_url.rsplit("/", 1)[0]
        self.spawn("redis-exporter", [
            REDIS_EXPORTER,
            f"-redis.addr={address}",
            f"-web.listen-address=127.0.0.1:{self.redis_exporter_port}",
        ])  # fmt: skip
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{self.redis_exporter_port}/metrics") == 200,
            30,
            "the Redis exporter",
        )

    def stop_api(self) -> None:
        """Stop the API as an orchestrator does (SIGTERM) and wait for it to exit."""
        if self.api is None:
            raise DrillError("the API is not running")
        self.api.send_signal(signal.SIGTERM)
        self.api.wait(timeout=30)

    def stop_all(self) -> None:
        """Stop every process the drill started."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expression)}"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local URL
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
        return result


def drive_traffic(base: str) -> dict[str, str]:
    """Give every panel data: sign-ups (one 429), deposits, cache reads, payments.

    The deposits succeed and fail through the worker; a payment succeeds, is replayed, and one
    is refused for insufficient funds.
    """
    email = f"drill-{secrets.token_hex(4)}@example.com"
    password = "drill-passphrase-2026"  # noqa: S105 - a throwaway user of the drill's database
    user = {"email": email, "password": password, "full_name": "Drill"}
    require(call(base, "POST", "/api/v1/auth/register", user)[0] == 201, "register")
    for _ in range(2):  # the drill's limit is 2 a minute: the second of these is a 429
        call(base, "POST", "/api/v1/auth/register", {**user, "email": "x" + email})
    status, tokens = call(
        base, "POST", "/api/v1/auth/login", {"form": {"username": email, "password": password}}
    )
    require(status == 200, f"login: {status}")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    accounts = [
        call(base, "POST", "/api/v1/accounts", {"currency": "EUR", "name": name}, **auth)[1]["id"]
        for name in ("Main", "Savings")
    ]
    deposits = []
    for amount in (5000, 1013):  # succeeds; declined
        body = {"account_id": accounts[0], "amount": amount, "currency": "EUR"}
        status, deposit = call(
            base,
            "POST",
            "/api/v1/deposits",
            body,
            **auth,
            **{"Idempotency-Key": secrets.token_hex(16)},
        )
        require(status == 202, f"deposit: {status}")
        deposits.append(deposit["id"])
    wait_for(
        lambda: all(
            call(base, "GET", f"/api/v1/deposits/{d}", **auth)[1]["status"] != "pending"
            for d in deposits
        ),
        30,
        "the worker to finish the deposits",
    )
    for _ in range(3):  # a miss, then hits
        call(base, "GET", f"/api/v1/accounts/{accounts[0]}", **auth)
    key = {"Idempotency-Key": secrets.token_hex(16)}
    payment = {
        "source_account_id": accounts[0],
        "destination_account_id": accounts[1],
        "amount": 100,
        "currency": "EUR",
    }
    require(call(base, "POST", "/api/v1/payments", payment, **auth, **key)[0] == 201, "payment")
    call(base, "POST", "/api/v1/payments", payment, **auth, **key)  # a replay
    too_much = {**payment, "amount": 10**9}
    fresh = {"Idempotency-Key": secrets.token_hex(16)}
    require(call(base, "POST", "/api/v1/payments", too_much, **auth, **fresh)[0] == 409, "refusal")
    return auth


class Load:
    """Authenticated reads of the account list, five a second, in a thread, until stopped."""

    def __init__(self, base: str, auth: dict[str, str]) -> None:
        self.base, self.auth = base, auth
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                status = call(self.base, "GET", "/api/v1/accounts", **self.auth)[0]
            except (OSError, ValueError):
                status = 0  # between two API processes: nothing answers
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def stop(self) -> dict[int, int]:
        """Stop; how many answers of each status (0: no answer)."""
        self._stop.set()
        self._thread.join(timeout=10)
        return self.statuses


def evaluate_queries(prometheus: str) -> list[str]:
    """Every dashboard query with data, every alert expression valid: what is wrong, if anything."""
    problems = []
    for expression in QUERIES:
        try:
            if not query(prometheus, expression):
                problems.append(f"no data: {expression}")
        except urllib.error.HTTPError as error:
            problems.append(f"invalid ({error.code}): {expression}")
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules" / "ledger.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            try:
                query(prometheus, rule["expr"])
            except urllib.error.HTTPError as error:
                problems.append(f"invalid ({error.code}): {rule.get('alert') or rule['record']}")
    return problems


def inhibited(alertmanager: str, alert: str) -> bool:
    """Whether Alertmanager holds `alert` back (suppressed) because another alert inhibits it."""
    matcher = urllib.parse.quote(f'alertname="{alert}"')
    url = f"{alertmanager}/api/v2/alerts?filter={matcher}"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local URL
        alerts: list[dict[str, Any]] = json.loads(response.read())
    return any(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in alerts)


def check_messages(found: dict[str, Message], alert: str, status: str) -> None:
    """Both channels got a message naming the alert, its status and its runbook."""
    runbook = f"docs/operations.md#{alert.lower()}"
    for channel in ("telegram", "slack"):
        message = found[channel]
        require(alert in message.text, f"{channel}: no alert name in {message.text!r}")
        require(runbook in message.text, f"{channel}: no runbook in {message.text!r}")
        require(status in message.text.upper(), f"{channel}: not {status}: {message.text!r}")


def arrived(
    drill: Drill, stand_in: StandIn, alert: str, status: str, within: float
) -> dict[str, Message]:
    """Wait for `alert` in `status` on both channels, check both messages, note when."""
    wait_for(
        lambda: len(stand_in.received(alert, status)) == 2, within, f"{alert} {status} on both"
    )
    found = stand_in.received(alert, status)
    check_messages(found, alert, status)
    for channel, message in sorted(found.items(), key=lambda item: item[1].at):
        at = message.at - drill.started
        drill.timeline.append((at, f"{alert} {status.lower()} reached {channel}"))
        print(f"  {at:6.1f} s  {alert} {status.lower()} reached {channel}")
    return found


def main() -> int:
    """Run the drill; 0 if the alert fired and resolved on both channels in time."""
    tools = ("prometheus", POSTGRES_EXPORTER, REDIS_EXPORTER)
    if any(shutil.which(tool) is None for tool in tools) or not ALERTMANAGER.exists():
        print(
            "alert-drill needs prometheus, the exporters and Alertmanager: make monitoring-tools",
            file=sys.stderr,
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="alert-drill-"))
    drill = Drill(work)
    stand_in = StandIn(
        telegram_token=f"drill:{secrets.token_hex(8)}", slack_path=f"/slack/{secrets.token_hex(8)}"
    )
    stand_in_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    server = stand_in.serve(stand_in_port)
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    print(f"alert drill: {DOWN}, then {ERRORS}, then {OUTAGE}; files in {work}")
    try:
        asyncio.run(admin_sql(drill.database_url, f'CREATE DATABASE "{drill.database}"'))
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": drill.database_url}, check=True,
            capture_output=True,
        )  # fmt: skip
        drill.start_api()
        drill.start_worker()
        drill.start_postgres_exporter()
        drill.start_redis_exporter()
        routing = alertmanager_config(work, stand_in=stand_in, stand_in_port=stand_in_port)
        jobs = {
            "api": drill.api_port,
            "worker": drill.worker_port,
            "postgres": drill.postgres_exporter_port,
            "redis": drill.redis_exporter_port,
        }
        scraping = prometheus_config(work, jobs=jobs, alertmanager_port=alertmanager_port)
        drill.spawn("alertmanager", [
            str(ALERTMANAGER),
            f"--config.file={routing}",
            f"--storage.path={work / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        ])  # fmt: skip
        drill.spawn("prometheus", [
            "prometheus",
            f"--config.file={scraping}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ])  # fmt: skip
        wait_for(
            lambda: (
                http_status(f"{prometheus}/-/ready") == 200
                and any(s["value"][1] == "1" for s in query(prometheus, 'up{job="api"}'))
            ),
            60,
            "first scrape of the API",
        )
        alertmanager = f"http://127.0.0.1:{alertmanager_port}"
        wait_for(lambda: http_status(f"{alertmanager}/-/ready") == 200, 30, "Alertmanager")
        # It answers even when it refused to apply its configuration: it would never notify.
        errors = [
            line
            for line in (work / "alertmanager.log").read_text().splitlines()
            if "level=ERROR" in line
        ]
        require(not errors, "Alertmanager reported errors:\n  " + "\n  ".join(errors))
        drill.note("Prometheus scrapes the API (up == 1); Alertmanager runs its configuration")

        base = f"http://127.0.0.1:{drill.api_port}"
        auth = drive_traffic(base)
        drill.note("traffic driven: sign-ups (one 429), deposits, cache reads, payments")
        time.sleep(35)  # two more scrapes: every rate() has two samples of the traffic
        problems = evaluate_queries(prometheus)
        require(not problems, "dashboard or alert queries:\n  " + "\n  ".join(problems))
        drill.note(f"all {len(QUERIES)} dashboard queries return data; every alert expression runs")
        for up in ('pg_up{job="postgres"}', 'redis_up{job="redis"}'):
            values = [sample["value"][1] for sample in query(prometheus, up)]
            require(values == ["1"], f"{up} is {values}, not [1]")
        drill.note("the exporters see PostgreSQL and Redis (pg_up == 1, redis_up == 1)")

        drill.stop_api()
        drill.note("API stopped (SIGTERM)")
        firing = arrived(drill, stand_in, DOWN, "FIRING", FIRE_WITHIN)
        print("  the page, as Slack got it:", *firing["slack"].text.splitlines(), sep="\n    | ")
        drill.start_api()
        drill.note("API started again and ready")
        arrived(drill, stand_in, DOWN, "RESOLVED", RESOLVE_WITHIN)

        # 5xx: the same API, pointed at a database that refuses every connection.
        load = Load(base, auth)
        drill.stop_api()
        refusing = make_url(drill.database_url).set(port=free_port())
        drill.start_api(database_url=refusing.render_as_string(hide_password=False))
        drill.note("API restarted on a database that refuses it; 5 reads a second")
        arrived(drill, stand_in, ERRORS, "FIRING", ERRORS_FIRE_WITHIN)
        drill.stop_api()
        drill.start_api()
        drill.note("API restarted on its database")
        arrived(drill, stand_in, ERRORS, "RESOLVED", ERRORS_RESOLVE_WITHIN)

        # The database is down for the exporter too: the outage pages, the 5xx it explains not.
        outage_started = time.monotonic()
        drill.stop_api()
        drill.start_api(database_url=refusing.render_as_string(hide_password=False))
        drill.start_postgres_exporter(database_url=refusing.render_as_string(hide_password=False))
        drill.note("API and Postgres exporter on a database that refuses them")
        arrived(drill, stand_in, OUTAGE, "FIRING", FIRE_WITHIN)
        wait_for(
            lambda: inhibited(alertmanager, ERRORS),
            ERRORS_FIRE_WITHIN,
            f"{ERRORS} firing in Prometheus and held back by Alertmanager's inhibition",
        )
        drill.note(f"{ERRORS} fires in Prometheus; Alertmanager lists it inhibited by {OUTAGE}")
        time.sleep(15)  # past the page route's group_wait (10 s): a leak would have arrived
        leaked = stand_in.received(ERRORS, "FIRING", since=outage_started)
        require(not leaked, f"{ERRORS} reached {sorted(leaked)} despite {OUTAGE}")
        drill.note(f"no {ERRORS} message during the outage: one page, for the cause")
        drill.stop_api()
        drill.start_api()
        drill.start_postgres_exporter()
        drill.note("API and Postgres exporter on the database again")
        arrived(drill, stand_in, OUTAGE, "RESOLVED", RESOLVE_WITHIN)
        statuses = load.stop()
        drill.note(f"answers during the load: {dict(sorted(statuses.items()))} (0: none)")
        require(statuses.get(500, 0) > 0, f"the refused database gave no 500: {statuses}")
        require(not stand_in.refused, f"requests to unknown paths: {stand_in.refused}")
        print("alert drill: OK")
        return 0
    except (DrillError, subprocess.CalledProcessError) as exc:
        print(f"alert drill FAILED: {exc}", file=sys.stderr)
        for name in (
            "api", "worker", "prometheus", "alertmanager", "postgres-exporter", "redis-exporter"
        ):  # fmt: skip
            log = work / f"{name}.log"
            if log.exists():
                print(f"--- last lines of {name}.log", file=sys.stderr)
                print(
                    "\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr
                )
        return 1
    finally:
        drill.stop_all()
        server.shutdown()
        asyncio.run(
            admin_sql(
                drill.database_url, f'DROP DATABASE IF EXISTS "{drill.database}" WITH (FORCE)'
            )
        )


if __name__ == "__main__":
    sys.exit(main())
