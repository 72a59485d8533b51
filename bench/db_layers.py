"""Where a database read's CPU goes, layer by layer, in process, next to the same route without it.

    .venv/bin/python bench/db_layers.py [--requests 2000] [--rounds 3]

The app runs under its lifespan (real PostgreSQL and Redis, production settings) with five probe
routes added, each authenticated by `CurrentUser` (a cached principal, as every API route) and
each reading `SELECT 1` a different way:

- `none`: no database at all (what every authenticated route pays before it reads);
- `raw`: a pooled connection's asyncpg `fetchval`, no SQLAlchemy statement;
- `core`: SQLAlchemy Core `execute` on an autocommit connection of the pool;
- `session`: the request's `SessionDep`, as the endpoints read (ADR 0031, 0032).

The `raw` route checks its connection out through SQLAlchemy's pool all the same.

Then the bare round trips, outside the app: asyncpg and redis-py on held connections, and
redis-py through its pool, its `execute_command` and a registered script (the rate limit's way).
The report (stderr) is CPU µs per request or round trip, best of the rounds; the differences
between rows are what each layer costs.
"""

# No `from __future__ import annotations`: the probe routes name `CurrentUser` and `SessionDep`
# from a local import, and FastAPI resolves string annotations in the module's globals.

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import redis.asyncio as aredis
import uvloop
from asgi_lifespan import LifespanManager
from cpu_per_request import MakeRequest, drive, out, scope_for
from fastapi import APIRouter, Request
from harness import (
    API,
    REDIS_URL,
    migrate,
    new_database_name,
    progress_logger,
    sign_up,
    throwaway_database,
    use_in_process,
)
from sqlalchemy import literal, select

log = progress_logger("db-layers")
ONE = select(literal(1))
LAYERS = ("none", "raw", "core", "session")
CONCURRENCY = 16


def probe_router() -> APIRouter:
    """The probe routes; imported late, after the environment is set for the app."""
    from app.auth.dependencies import CurrentUser
    from app.core.dependencies import SessionDep

    router = APIRouter(prefix=f"{API}/probe")

    @router.get("/none")
    async def none(user: CurrentUser) -> dict[str, int]:
        return {"one": 1}

    @router.get("/raw")
    async def raw(user: CurrentUser, request: Request) -> dict[str, int]:
        async with request.app.state.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            return {"one": await driver.fetchval("SELECT 1")}

    @router.get("/core")
    async def core(user: CurrentUser, request: Request) -> dict[str, int]:
        # Made once, after start-up (`layers`): a new option engine per request would be
        # measured as SQLAlchemy's cost.
        async with request.app.state.autocommit_engine.connect() as connection:
            return {"one": (await connection.execute(ONE)).scalar_one()}

    @router.get("/session")
    async def session(user: CurrentUser, session: SessionDep) -> dict[str, int]:
        return {"one": (await session.execute(ONE)).scalar_one()}

    return router


def get(path: str, headers: list[tuple[bytes, bytes]]) -> MakeRequest:
    """The same GET request every time."""
    return lambda _: (scope_for("GET", path, headers), b"")


async def layers(args: argparse.Namespace, database_url: str) -> None:
    """The probe routes, in interleaved rounds."""
    use_in_process(database_url)
    from app.main import create_app

    app = create_app()
    app.include_router(probe_router())
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app)) as client,
    ):
        app.state.autocommit_engine = app.state.engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        _, _, token = await sign_up(client, "http://bench", "layers")
        auth = [(b"authorization", f"Bearer {token}".encode())]
        results: dict[str, list[float]] = {name: [] for name in LAYERS}
        for round_index in range(args.rounds + 1):  # the first round warms up
            for name in LAYERS:
                path = f"{API}/probe/{name}"
                count = 300 if round_index == 0 else args.requests
                cpu = await drive(manager.app, get(path, auth), count, CONCURRENCY)
                if round_index:
                    results[name].append(cpu)
            log(f"round {round_index}/{args.rounds} done")
    out("| probe route | CPU µs/request (best) | + over `none` | rounds |")
    out("|---|---|---|---|")
    floor = min(results["none"])
    for name in LAYERS:
        best = min(results[name])
        rounds = ", ".join(f"{v:.0f}" for v in results[name])
        out(f"| {name} | {best:.0f} | {best - floor:+.0f} | {rounds} |")


async def round_trips(args: argparse.Namespace, database_url: str) -> None:
    """One round trip each way, on held connections and through redis-py's layers."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connections = [await asyncpg.connect(dsn) for _ in range(CONCURRENCY)]
    pool = aredis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=50, timeout=1)
    client = aredis.Redis(connection_pool=pool)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    await script(keys=["bench:db-layers"])

    async def evalsha(connection: Any) -> None:
        await connection.send_command("EVALSHA", script.sha, 1, "bench:db-layers")
        await connection.read_response()

    async def redis_held(n: int, _: int) -> None:
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            for _ in range(n):
                await evalsha(connection)
        finally:
            await pool.release(connection)

    async def redis_pooled(n: int, _: int) -> None:
        for _ in range(n):
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await evalsha(connection)
            finally:
                await pool.release(connection)

    async def redis_command(n: int, _: int) -> None:
        for _ in range(n):
            await client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", script.sha, 1, "bench:db-layers"
            )

    async def redis_script(n: int, _: int) -> None:
        for _ in range(n):
            await script(keys=["bench:db-layers"])

    async def postgres_held(n: int, index: int) -> None:
        for _ in range(n):
            await connections[index].fetchval("SELECT 1")

    kinds: dict[str, Callable[[int, int], Awaitable[None]]] = {
        "asyncpg `fetchval`, held connection": postgres_held,
        "redis-py EVALSHA, held connection": redis_held,
        "redis-py EVALSHA, pool get and release": redis_pooled,
        "redis-py `execute_command(EVALSHA)`": redis_command,
        "redis-py registered script (the rate limit's way)": redis_script,
    }
    best: dict[str, float] = {}
    try:
        for round_index in range(args.rounds + 1):
            for name, run in kinds.items():
                count = 50 if round_index == 0 else args.requests // CONCURRENCY
                started = time.process_time()
                await asyncio.gather(*(run(count, i) for i in range(CONCURRENCY)))
                cpu = (time.process_time() - started) / (count * CONCURRENCY) * 1e6
                if round_index:
                    best[name] = min(cpu, best.get(name, cpu))
    finally:
        await client.delete("bench:db-layers")
        await pool.aclose()
        for connection in connections:
            await connection.close()
    out("")
    out(f"| round trip ({CONCURRENCY} at once) | CPU µs (best) |")
    out("|---|---|")
    for name, value in best.items():
        out(f"| {name} | {value:.0f} |")


def main() -> None:
    """Parse the arguments and run both parts on a throw-away database."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database(new_database_name(), log) as database_url:
        migrate(database_url)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(layers(args, database_url))
            runner.run(round_trips(args, database_url))


if __name__ == "__main__":
    main()
