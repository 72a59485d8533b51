"""CPU per request, in process: the app's ASGI callable driven without HTTP, next to the bare app.

    .venv/bin/python bench/cpu_per_request.py [--requests 3000] [--concurrency 16] [--rounds 3]

A quieter measure than wrk for A/B work on one change: the app runs under its lifespan
(real PostgreSQL and Redis, production settings), N requests are sent straight to the ASGI
callable by `--concurrency` tasks, and the process's CPU time (not wall time, which waits
for Postgres and Redis) is divided by N. The bare app of bench/bare_app.py is measured in
the same rounds, interleaved; the report is µs of CPU per request (the best round: noise
only adds) and the ratio to bare. HTTP parsing (uvicorn, httptools) is left out of both:
it is the same for every route.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import uvloop
from asgi_lifespan import LifespanManager
from harness import (
    API,
    expect,
    migrate,
    new_database_name,
    open_account,
    progress_logger,
    promote_to_admin,
    sign_up,
    throwaway_database,
    use_in_process,
)

log = progress_logger("cpu")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
MakeRequest = Callable[[int], tuple[dict[str, Any], bytes]]


def out(line: str) -> None:
    """A line of the report: on stderr, since the app's own log lines go to stdout."""
    print(line, file=sys.stderr, flush=True)


def scope_for(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it."""
    raw_path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def one_request(app: ASGIApp, scope: dict[str, Any], body: bytes) -> int:
    """Send one request to `app` as uvicorn would; return the status it answered."""
    done = asyncio.Event()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    done.set()
    return status


async def drive(app: ASGIApp, make_request: MakeRequest, count: int, concurrency: int) -> float:
    """Send `count` requests with `concurrency` tasks; return CPU µs per request."""
    statuses: Counter[int] = Counter()
    counter = iter(range(count))

    async def worker() -> None:
        for index in counter:
            scope, body = make_request(index)
            statuses[await one_request(app, scope, body)] += 1

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - started
    if any(status >= 400 for status in statuses):
        raise SystemExit(f"unexpected answers: {dict(statuses)}")
    return cpu / count * 1e6


async def main_async(args: argparse.Namespace, database_url: str) -> None:
    """Set up the app and the bare app, measure each scenario in interleaved rounds."""
    use_in_process(database_url, log_level=args.log_level)
    import bare_app  # after sys.path: the app and the bare app read the environment above

    from app.main import create_app

    app = create_app()
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app)) as client,
    ):
        base = "http://bench"
        email, _, token = await sign_up(client, base, "cpu")
        # Promoted before its first authenticated request, so no cached principal says "user".
        await promote_to_admin(database_url, email)
        first = await open_account(client, base, token, "first")
        second = await open_account(client, base, token, "second")
        bearer = {"Authorization": f"Bearer {token}"}
        funded = await client.post(
            f"{base}{API}/admin/accounts/{first}/adjustments",
            json={"amount": 10**12, "reason": "funding"},
            headers={**bearer, "Idempotency-Key": str(uuid.uuid4())},
        )
        expect(funded, 201, "fund the account")
        # A first read fills the cache: the "cached account" row measures hits.
        read = await client.get(f"{base}{API}/accounts/{first}", headers=bearer)
        expect(read, 200, "read the account")
        auth = [(b"authorization", f"Bearer {token}".encode())]
        payment_body = json.dumps(
            {
                "source_account_id": first,
                "destination_account_id": second,
                "amount": 1,
                "currency": "EUR",
            }
        ).encode()

        def fixed(
            method: str, path: str, headers: Sequence[tuple[bytes, bytes]] = ()
        ) -> MakeRequest:
            return lambda _: (scope_for(method, path, list(headers)), b"")

        def payment(_: int) -> tuple[dict[str, Any], bytes]:
            headers = [
                *auth,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payment_body)).encode()),
                (b"idempotency-key", str(uuid.uuid4()).encode()),
            ]
            return scope_for("POST", f"{API}/payments", headers), payment_body

        scenarios: dict[str, tuple[ASGIApp, MakeRequest]] = {
            "bare /ping": (bare_app.app, fixed("GET", "/ping")),
            "/health/live": (manager.app, fixed("GET", "/health/live")),
            "cached account": (manager.app, fixed("GET", f"{API}/accounts/{first}", auth)),
            "/users/me": (manager.app, fixed("GET", f"{API}/users/me", auth)),
            "GET /payments": (manager.app, fixed("GET", f"{API}/payments?limit=20", auth)),
            "POST /payments": (manager.app, payment),
        }
        wanted = [s for s in scenarios if not args.only or any(o in s for o in args.only)]
        if "bare /ping" not in wanted:
            wanted.insert(0, "bare /ping")
        results: dict[str, list[float]] = {name: [] for name in wanted}
        for name in wanted:  # warm-up
            target, make = scenarios[name]
            await drive(target, make, min(300, args.requests), args.concurrency)
        for round_index in range(args.rounds):
            for name in wanted:
                target, make = scenarios[name]
                count = args.requests if "payments" not in name else args.requests // 4
                results[name].append(await drive(target, make, count, args.concurrency))
            log(f"round {round_index + 1}/{args.rounds} done")
        # The least disturbed round is the best estimate: a noisy neighbour only adds CPU.
        bare = min(results["bare /ping"])
        out(f"| scenario | CPU µs/request (best of {args.rounds}) | / bare | median | rounds |")
        out("|---|---|---|---|---|")
        for name in wanted:
            best, median = min(results[name]), statistics.median(results[name])
            rounds = ", ".join(f"{v:.0f}" for v in results[name])
            out(f"| {name} | {best:.0f} | {best / bare:.1f}x | {median:.0f} | {rounds} |")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    with throwaway_database(new_database_name(), log) as database_url:
        migrate(database_url)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main_async(args, database_url))


if __name__ == "__main__":
    main()
