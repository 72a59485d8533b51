"""`make chaos`: payments and deposits under load while the infrastructure fails; no money lost.

Real processes on this machine: two API processes, two workers and the scheduler, on a
database of the run's own and a private `redis-server` (never the shared one: it is stopped).

1. **Load** for CHAOS_SECONDS (default 60): payment threads between funded customers, each
   logical payment with its own Idempotency-Key (also its description, so the database can be
   asked about it), retried with the same key after a reset, a timeout, a 5xx or a 409
   `idempotency_key_in_progress`, as a real client does; deposits of every fake-provider kind
   (success, decline, transient failures, pending until a signed webhook, which is delivered
   twice and followed by a late, conflicting one); reads; clients that hang up mid-request.
2. **Faults**, each kind several times at seeded random moments: every app connection killed
   with `pg_terminate_backend`; Redis stopped and restarted (its stream is lost: the outbox and
   the sweeper must make up for it); a worker SIGKILLed; an API process SIGTERMed and replaced.
3. **Afterwards**, with the faults over: every payment whose outcome the client never learned is
   asked again with its key until it answers; every deposit must end final. Then, from the
   database: `ledger verify`; each payment the client saw succeed exists once, and no key made
   two; every balance equals what the client's own bookkeeping expects; every succeeded deposit
   is credited once with one receipt (or one in doubt: claimed by a worker SIGKILLed before it
   recorded the send, never sent again, ADR 0026), none is pending; no answer carried a
   traceback; both APIs are ready.

It prints the seed (CHAOS_SEED=<n> replays the same schedule), a table of faults, requests,
outcomes and invariants, and exits 1 if any invariant fails.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.cli import send_webhook, verify_ledger, worker_command
from app.core.config import get_settings
from tools.drills import DrillError, admin_sql, free_port, http_status, require, wait_for

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 6
FUNDING = 10_000_000  # each customer's starting balance: payments are never refused for funds
PAYMENT_THREADS = 4
RETRIES = 6
FAULT_KINDS = ("pg_terminate", "redis_restart", "worker_kill", "api_replace")
SETTLE_SECONDS = 150.0
UNSENT_RECEIPTS = (
    "SELECT d.id, extract(epoch FROM r.claimed_at) FROM deposits d "
    "LEFT JOIN deposit_receipts r ON r.deposit_id = d.id "
    "WHERE d.status = 'succeeded' AND r.sent_at IS NULL"
)  # (deposit, when its receipt was claimed or None): redelivery, the sweeper, the retries
# A receipt claimed by a worker SIGKILLed before it recorded the send stays unsent: at most
# once (ADR 0026). Such a claim is "in doubt" when a kill came within this long after it.
IN_DOUBT_WINDOW_SECONDS = 10.0


@dataclass
class Tally:
    """What the clients did and saw, shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    tracebacks: list[str] = field(default_factory=list)
    # key -> (body, the payment id of its 201, or None while unknown)
    payments: dict[str, tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    retried_keys: set[str] = field(default_factory=set)
    deposits: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> body

    def saw(self, what: str, response: httpx.Response | None) -> None:
        """Count one answer (or none); keep any body that looks like a traceback."""
        with self.lock:
            self.requests[what] += 1
            self.statuses[f"{what} {response.status_code if response else 'no answer'}"] += 1
            if response is not None and ("Traceback" in response.text or 'File "' in response.text):
                self.tracebacks.append(response.text[:500])


class Chaos:
    """The run: its database, private Redis, processes and clients."""

    def __init__(self, seed: int, work: Path) -> None:
        self.seed = seed
        self.random = random.Random(seed)  # noqa: S311 - a replayable schedule, not a secret
        self.work = work
        self.started = time.monotonic()
        settings = get_settings()
        self.database = f"ledger_chaos_{secrets.token_hex(4)}"
        url = make_url(str(settings.DATABASE_URL)).set(database=self.database)
        self.database_url = url.render_as_string(hide_password=False)
        self.redis_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.env = {
            "ENVIRONMENT": "development",
            "LOG_FORMAT": "json",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TASK_QUEUE": "ledger:chaos",
            # Short, so that redelivery and the sweeper act within the run; long enough for the
            # task's retries of a flaky charge (..42: pauses of 1 and 2 s) to fit its timeout.
            "TASK_REDELIVERY_SECONDS": "10",
            "PSP_FAKE_LATENCY_MS": "50",
            "OUTBOX_POLL_SECONDS": "0.2",
            "DRAIN_SECONDS": "1",
            "GRACEFUL_SHUTDOWN_SECONDS": "10",
            "WORKER_SHUTDOWN_SECONDS": "5",
            "RATE_LIMIT_DEFAULT": "10000000/minute",
            "RATE_LIMIT_LOGIN_PER_IP": "10000/minute",
            "RATE_LIMIT_LOGIN_PER_ACCOUNT": "10000/minute",
            "RATE_LIMIT_REGISTER": "10000/minute",
        }
        self.api_ports = [free_port(), free_port()]
        self.apis: dict[int, subprocess.Popen[bytes]] = {}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self.tally = Tally()
        self.stop = threading.Event()
        self.worker_kills: list[float] = []  # wall-clock times, to explain receipts in doubt

    # -- processes -------------------------------------------------------------------------

    def note(self, what: str) -> None:
        """One line of the timeline."""
        print(f"  {time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Any:
        """A process of the run, in its own process group, logging into the run's folder."""
        log = (self.work / f"{name}.log").open("ab")
        return subprocess.Popen(  # noqa: S603 - fixed commands
            command,
            cwd=ROOT,
            env={**os.environ, **self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    def start_redis(self) -> None:
        """The run's own Redis, empty (nothing is saved: a restart loses the stream)."""
        self.redis = self.spawn("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.work),
        ])  # fmt: skip
        wait_for(lambda: _redis_answers(self.redis_port), 10, "the private Redis")

    def start_api(self, port: int) -> None:
        """An API process (as the image runs it) on `port`, ready."""
        self.apis[port] = self.spawn(
            f"api-{port}", [sys.executable, "-m", "app.server"],
            {"HOST": "127.0.0.1", "PORT": str(port)},
        )  # fmt: skip
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{port}/health/ready") == 200, 30, "API ready"
        )

    def start_worker(self) -> None:
        """One more worker (the command make run and the image use)."""
        port = free_port()
        self.workers.append(
            self.spawn(
                f"worker-{port}", worker_command(get_settings()), {"WORKER_METRICS_PORT": str(port)}
            )
        )

    def stop_all(self) -> None:
        """Stop every process of the run."""
        processes = [*self.apis.values(), *self.workers, *self.others]
        if self.redis is not None:
            processes.append(self.redis)
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, kind: str) -> None:
        """One fault of `kind`, now."""
        if kind == "pg_terminate":
            killed = asyncio.run(_terminate_backends(self.database_url, self.database))
            self.note(f"fault: pg_terminate_backend on {killed} app connections")
        elif kind == "redis_restart":
            assert self.redis is not None  # noqa: S101 - started first
            self.redis.terminate()
            self.redis.wait(timeout=10)
            time.sleep(self.random.uniform(1, 3))
            self.start_redis()
            self.note("fault: Redis stopped and restarted empty")
        elif kind == "worker_kill":
            victim = self.random.choice([w for w in self.workers if w.poll() is None])
            os.killpg(victim.pid, signal.SIGKILL)
            self.worker_kills.append(time.time())
            victim.wait(timeout=10)
            self.start_worker()
            self.note(f"fault: worker {victim.pid} SIGKILLed, another started")
        elif kind == "api_replace":
            port = self.random.choice(self.api_ports)
            process = self.apis[port]
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
            require(code == 0, f"the API on {port} exited {code} on SIGTERM")
            self.start_api(port)
            self.note(f"fault: API on {port} SIGTERMed (exit 0) and replaced")
        with self.tally.lock:
            self.tally.faults[kind] += 1

    def faults(self, seconds: float) -> None:
        """Each fault kind twice, in a seeded order, spread over `seconds`."""
        plan = list(FAULT_KINDS) * 2
        self.random.shuffle(plan)
        gap = seconds / (len(plan) + 1)
        for kind in plan:
            if self.stop.wait(self.random.uniform(0.5 * gap, 1.5 * gap)):
                return
            try:
                self.inject(kind)
            except Exception as exc:
                self.note(f"fault {kind} could not be injected: {exc}")
                raise

    # -- load ------------------------------------------------------------------------------

    def url(self) -> str:
        """Some API process (the client's load balancer)."""
        return f"http://127.0.0.1:{self.random.choice(self.api_ports)}"

    def request(
        self, client: httpx.Client, what: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request to some API; None when nothing answered (reset, refused, timeout)."""
        try:
            response = client.request(method, self.url() + path, **kwargs)
        except httpx.TransportError:
            response = None
        self.tally.saw(what, response)
        return response

    def pay(self, client: httpx.Client, auth: dict[str, str], key: str) -> str | None:
        """Post the payment of `key` until it has an answer; its id if it succeeded."""
        body, _ = self.tally.payments[key]
        for attempt in range(RETRIES):
            if attempt:
                with self.tally.lock:
                    self.tally.retried_keys.add(key)
                time.sleep(min(0.2 * 2**attempt, 2))
            response = self.request(
                client, "payment", "POST", "/api/v1/payments", json=body,
                headers={**auth, "Idempotency-Key": key},
            )  # fmt: skip
            if response is None or response.status_code >= 500:
                continue
            if response.status_code == 409 and "in_progress" in response.text:
                continue
            require(response.status_code == 201, f"payment {key}: {response.text[:300]}")
            payment_id = str(response.json()["id"])
            with self.tally.lock:
                self.tally.payments[key] = (body, payment_id)
            return payment_id
        return None

    def payer(self, customers: list[dict[str, Any]]) -> None:
        """A thread of payments between random customers."""
        rng = random.Random(self.random.random())  # noqa: S311 - replayable
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                source, target = rng.sample(customers, 2)
                key = str(uuid.UUID(int=rng.getrandbits(128)))
                body = {
                    "source_account_id": source["account"],
                    "destination_account_id": target["account"],
                    "amount": rng.randint(1, 500),
                    "currency": "EUR",
                    "description": key,
                }
                with self.tally.lock:
                    self.tally.payments[key] = (body, None)
                self.pay(client, source["auth"], key)
                if rng.random() < 0.2:
                    self.request(
                        client, "read", "GET", f"/api/v1/accounts/{source['account']}",
                        headers=source["auth"],
                    )  # fmt: skip

    def depositor(self, customers: list[dict[str, Any]]) -> None:
        """Deposits of every kind; the pending ones finished by signed webhooks, delivered oddly."""
        rng = random.Random(self.random.random())  # noqa: S311 - replayable
        settings = get_settings()  # the APIs' PSP_WEBHOOK_SECRET: the webhooks are signed with it
        serial = 0
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.3):
                customer = rng.choice(customers)
                serial += 1
                suffix = rng.choice((0, 13, 42, 77))
                amount = serial * 100 + suffix
                key = str(uuid.UUID(int=rng.getrandbits(128)))
                body = {"account_id": customer["account"], "amount": amount, "currency": "EUR"}
                for _ in range(RETRIES):
                    response = self.request(
                        client, "deposit", "POST", "/api/v1/deposits", json=body,
                        headers={**customer["auth"], "Idempotency-Key": key},
                    )  # fmt: skip
                    if response is not None and response.status_code == 202:
                        deposit = {**response.json(), "owner": customer}
                        with self.tally.lock:
                            self.tally.deposits[deposit["id"]] = deposit
                        if suffix == 77:
                            self.webhooks(settings, deposit["id"], rng)
                        break
                    time.sleep(0.3)

    def webhooks(self, settings: Any, deposit_id: str, rng: random.Random) -> None:
        """charge.succeeded twice (same event), then a late charge.failed: one outcome only."""
        event = f"evt_{uuid.uuid4().hex}"
        first = rng.choice(("charge.succeeded", "charge.failed"))
        late = "charge.failed" if first == "charge.succeeded" else "charge.succeeded"
        deliveries = [(first, event), (first, event), (late, f"evt_{uuid.uuid4().hex}")]
        for kind, event_id in deliveries:
            for _ in range(RETRIES):
                try:
                    status, answer = send_webhook(
                        settings, event_type=kind, deposit_id=deposit_id, event_id=event_id,
                        failure_code="card_declined" if kind == "charge.failed" else None,
                        url=f"{self.url()}/api/v1/webhooks/psp",
                    )  # fmt: skip
                except httpx.TransportError:
                    status, answer = 0, ""
                with self.tally.lock:
                    self.tally.requests["webhook"] += 1
                    self.tally.statuses[f"webhook {status or 'no answer'}"] += 1
                    if "Traceback" in answer:
                        self.tally.tracebacks.append(answer[:500])
                if status == 200:
                    break
                time.sleep(0.3)

    def hang_ups(self) -> None:
        """Clients that send half a request and leave."""
        rng = random.Random(self.random.random())  # noqa: S311 - replayable
        while not self.stop.wait(rng.uniform(0.5, 2)):
            port = rng.choice(self.api_ports)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    sock.sendall(
                        b"POST /api/v1/payments HTTP/1.1\r\nHost: x\r\n"
                        b'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"amo'
                    )
            except OSError:
                pass
            with self.tally.lock:
                self.tally.requests["hang-up"] += 1


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def _terminate_backends(url: str, database: str) -> int:
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def _rows(url: str, query: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(text(query)))
    finally:
        await engine.dispose()


def customers_of(chaos: Chaos) -> list[dict[str, Any]]:
    """Sign up the customers, open an account each, fund it through the admin's adjustment."""
    settings = get_settings()
    base = f"http://127.0.0.1:{chaos.api_ports[0]}"
    with httpx.Client(base_url=base, timeout=30) as client:
        form = {"username": settings.FIRST_ADMIN_EMAIL,
                "password": settings.FIRST_ADMIN_PASSWORD.get_secret_value()}  # fmt: skip
        admin = client.post("/api/v1/auth/login", data=form)
        require(admin.status_code == 200, f"admin login: {admin.text}")
        admin_auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        customers = []
        for index in range(CUSTOMERS):
            email, password = (
                f"chaos-{index}-{secrets.token_hex(3)}@example.com",
                secrets.token_urlsafe(16),
            )
            made = client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": password, "full_name": f"Chaos {index}"},
            )
            require(made.status_code == 201, f"register: {made.text}")
            tokens = client.post(
                "/api/v1/auth/login", data={"username": email, "password": password}
            )
            auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            account = client.post(
                "/api/v1/accounts", json={"currency": "EUR", "name": "Main"}, headers=auth
            )
            funded = client.post(
                f"/api/v1/admin/accounts/{account.json()['id']}/adjustments",
                json={"amount": FUNDING, "reason": "chaos run funding"},
                headers={**admin_auth, "Idempotency-Key": str(uuid.uuid4())},
            )
            require(funded.status_code == 201, f"funding: {funded.text}")
            customers.append({"auth": auth, "account": str(account.json()["id"])})
    return customers


def settle(chaos: Chaos, customers: list[dict[str, Any]]) -> None:
    """With the faults over: every payment answered, every deposit final."""
    unknown = [key for key, (_, found) in chaos.tally.payments.items() if found is None]
    owners = {c["account"]: c["auth"] for c in customers}
    with httpx.Client(timeout=10) as client:
        for key in unknown:
            body, _ = chaos.tally.payments[key]
            chaos.pay(client, owners[body["source_account_id"]], key)
    still = [k for k, (_, found) in chaos.tally.payments.items() if found is None]
    require(not still, f"{len(still)} payments never got an answer, e.g. {still[:3]}")
    chaos.note(f"{len(unknown)} payments whose outcome the client had not learned: all answered")

    def pending() -> list[str]:
        rows = asyncio.run(
            _rows(chaos.database_url, "SELECT id, amount FROM deposits WHERE status = 'pending'")
        )
        return [f"{row[0]} ({row[1]})" for row in rows]

    def unsent() -> list[str]:
        return unsent_receipts(chaos)[1]

    started = time.monotonic()
    try:
        wait_for(lambda: not pending() and not unsent(), SETTLE_SECONDS, "deposits settled")
    except DrillError as exc:
        raise DrillError(
            f"{exc}; still pending (amount): {', '.join(pending()[:10])}; "
            f"succeeded without a receipt sent (nor in doubt): {', '.join(unsent()[:10])}"
        ) from None
    took = time.monotonic() - started
    in_doubt = unsent_receipts(chaos)[0]
    doubt = f" but {len(in_doubt)}, whose worker was SIGKILLed after its claim" if in_doubt else ""
    chaos.note(f"every deposit final, every receipt sent{doubt} ({took:.0f} s after the load)")


def unsent_receipts(chaos: Chaos) -> tuple[list[str], list[str]]:
    """Succeeded deposits whose receipt is not recorded as sent: (in doubt, otherwise).

    In doubt: claimed, and a worker was SIGKILLed within IN_DOUBT_WINDOW_SECONDS after the
    claim, so the claimant may have died between it and the mail server's answer; by design
    (ADR 0026) nothing sends those again. Any other is still owed by redelivery or the sweeper.
    """
    in_doubt: list[str] = []
    owed: list[str] = []
    for deposit_id, claimed_at in asyncio.run(_rows(chaos.database_url, UNSENT_RECEIPTS)):
        killed_after_claim = claimed_at is not None and any(
            0 <= kill - float(claimed_at) <= IN_DOUBT_WINDOW_SECONDS for kill in chaos.worker_kills
        )
        if killed_after_claim:
            in_doubt.append(str(deposit_id))
        else:  # a failure message says which: never claimed, or claimed and not sent
            owed.append(f"{deposit_id}{' (claimed)' if claimed_at is not None else ''}")
    return in_doubt, owed


def check(chaos: Chaos, customers: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """The invariants, from the database: (what, held, detail)."""
    url = chaos.database_url
    settings = get_settings().model_copy(update={"DATABASE_URL": url})
    breaches = asyncio.run(verify_ledger(settings))
    results = [("ledger verify", not breaches, "; ".join(breaches[:3]) or "no breach")]

    rows = asyncio.run(_rows(url, "SELECT description, id, status FROM payments"))
    by_key = collections.defaultdict(list)
    for description, payment_id, status in rows:
        by_key[description].append((str(payment_id), status))
    doubled = [key for key, found in by_key.items() if len(found) > 1]
    results.append(("no key made two payments", not doubled, f"{len(by_key)} keys in the database"))
    seen = {key: found for key, (_, found) in chaos.tally.payments.items()}
    missing = [k for k, pid in seen.items() if [(pid, "succeeded")] != by_key.get(k)]
    results.append((
        "each payment the client saw succeed exists once",
        not missing,
        f"{len(seen)} payments, {len(chaos.tally.retried_keys)} retried after a fault",
    ))  # fmt: skip
    strays = set(by_key) - set(seen)
    results.append(("no payment the client did not ask for", not strays, f"{len(strays)} strays"))

    deposits = {
        str(i): (status, amount, tx)
        for i, status, amount, tx in asyncio.run(
            _rows(url, "SELECT id, status, amount, ledger_transaction_id FROM deposits")
        )
    }
    expected = {c["account"]: FUNDING for c in customers}
    for body, _ in chaos.tally.payments.values():
        expected[body["source_account_id"]] -= body["amount"]
        expected[body["destination_account_id"]] += body["amount"]
    credited_wrong = []
    for deposit_id, deposit in chaos.tally.deposits.items():
        status, amount, tx = deposits[deposit_id]
        if status == "succeeded":
            expected[deposit["account_id"]] += amount
        if (status == "succeeded") != (tx is not None):
            credited_wrong.append(deposit_id)
    balances = {
        str(i): balance
        for i, balance in asyncio.run(
            _rows(url, "SELECT id, balance FROM accounts WHERE kind = 'user'")
        )
        if str(i) in expected
    }
    wrong = {a: (balances.get(a), e) for a, e in expected.items() if balances.get(a) != e}
    results.append(
        (
            "balances are what the client's bookkeeping expects",
            not wrong,
            f"{len(expected)} accounts",
        )
    )
    results.append(
        (
            "each succeeded deposit credited once, a failed one never",
            not credited_wrong,
            f"{len(deposits)} deposits",
        )
    )
    in_doubt, owed = unsent_receipts(chaos)
    # What the workers actually sent (the console email backend logs each email once).
    sent = collections.Counter(
        line.split("Deposit: ", 1)[1][:36]
        for log in chaos.work.glob("worker-*.log")
        for line in log.read_text(errors="replace").splitlines()
        if '"email_sent"' in line and "Deposit: " in line
    )
    twice = [deposit for deposit, count in sent.items() if count > 1]
    succeeded = {i for i, (status, _, _) in deposits.items() if status == "succeeded"}
    # Every succeeded deposit's receipt went out, but those in doubt (maybe sent, maybe not).
    unaccounted = succeeded - set(sent) - set(in_doubt)
    results.append((
        "one receipt per succeeded deposit, none twice (in doubt only after a SIGKILL)",
        not owed and not twice and set(sent) <= succeeded and not unaccounted,
        f"{len(sent)} sent, {len(twice)} twice, {len(in_doubt)} in doubt, {len(owed)} unsent",
    ))  # fmt: skip
    finals = collections.Counter(status for status, _, _ in deposits.values())
    results.append(("no deposit left pending", "pending" not in finals, str(dict(finals))))
    results.append(
        (
            "no answer carried a traceback",
            not chaos.tally.tracebacks,
            f"{len(chaos.tally.tracebacks)} seen",
        )
    )
    ready = [http_status(f"http://127.0.0.1:{p}/health/ready") for p in chaos.api_ports]
    results.append(("both APIs ready again", ready == [200, 200], str(ready)))
    return results


def main() -> int:
    """The run; 0 when every invariant held."""
    seed = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
    seconds = float(os.environ.get("CHAOS_SECONDS", "60"))
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    chaos = Chaos(seed, work)
    print(
        f"chaos run: seed {seed} (CHAOS_SEED={seed} replays it), {seconds:.0f} s of faults;"
        f" logs in {work}"
    )
    try:
        asyncio.run(admin_sql(chaos.database_url, f'CREATE DATABASE "{chaos.database}"'))
        env = {**os.environ, **chaos.env}
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [sys.executable, "-m", "app.cli", "seed"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        chaos.start_redis()
        for port in chaos.api_ports:
            chaos.start_api(port)
        chaos.start_worker()
        chaos.start_worker()
        chaos.others.append(chaos.spawn("scheduler", [sys.executable, "-m", "app.scheduler"]))
        customers = customers_of(chaos)
        chaos.note(
            f"2 APIs, 2 workers, the scheduler, a private Redis; {CUSTOMERS} funded customers"
        )
        threads = [
            threading.Thread(target=chaos.payer, args=(customers,)) for _ in range(PAYMENT_THREADS)
        ]
        threads += [
            threading.Thread(target=chaos.depositor, args=(customers,)),
            threading.Thread(target=chaos.hang_ups),
        ]
        for thread in threads:
            thread.start()
        faults = threading.Thread(target=chaos.faults, args=(seconds,))
        faults.start()
        faults.join(timeout=seconds + 120)
        chaos.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        chaos.note("load stopped")
        settle(chaos, customers)
        results = check(chaos, customers)
    except (DrillError, subprocess.CalledProcessError) as exc:
        print(f"chaos run FAILED (seed {seed}): {exc}", file=sys.stderr)
        return 1
    finally:
        chaos.stop.set()
        chaos.stop_all()
        asyncio.run(
            admin_sql(
                chaos.database_url, f'DROP DATABASE IF EXISTS "{chaos.database}" WITH (FORCE)'
            )
        )
    print_table(chaos, results)
    failed = [what for what, held, _ in results if not held]
    if failed:
        print(
            f"chaos run FAILED (seed {seed}): {', '.join(failed)}; logs in {work}", file=sys.stderr
        )
        return 1
    print(f"chaos run: OK (seed {seed})")
    return 0


def print_table(chaos: Chaos, results: list[tuple[str, bool, str]]) -> None:
    """Faults injected, requests made, outcomes seen, invariants checked."""
    tally = chaos.tally
    print("\n| faults injected | times |\n|---|---|")
    for kind in FAULT_KINDS:
        print(f"| {kind} | {tally.faults[kind]} |")
    print("\n| requests | count |\n|---|---|")
    for what, count in sorted(tally.requests.items()):
        print(f"| {what} | {count} |")
    print("\n| outcome | count |\n|---|---|")
    for what, count in sorted(tally.statuses.items()):
        print(f"| {what} | {count} |")
    print("\n| invariant | held | detail |\n|---|---|---|")
    for what, held, detail in results:
        print(f"| {what} | {'yes' if held else '**NO**'} | {detail} |")


if __name__ == "__main__":
    sys.exit(main())
