"""What each middleware costs, in process: the app with all of it, with none, and one left out.

    .venv/bin/python bench/middleware_cost.py [--requests 8000] [--rounds 3]

One app per variant, each under its own lifespan (real PostgreSQL and Redis, production
settings, JSON access log at INFO), driven straight through ASGI as `cpu_per_request.py` does,
next to the bare app, in interleaved rounds. Variants:

- `all`: the app as `create_app` builds it;
- `none`: the same routes with no middleware of ours (FastAPI's own layers stay);
- `without X`: every middleware but X;
- `all, no access line`: every middleware, the access line filtered out (WARNING).

The report (stderr) is CPU µs per request, best of the rounds, for `/health/live` and for the
cached `GET /accounts/{id}`, and what each variant saves against `all`. Leaving a middleware
out changes what the others do (without the rate limit, nothing reads the principal and the
account ahead, so the cached read makes two more Redis calls): read each row as "the app
without it", not as a price tag that adds up. The cached read's column moves by ±30 µs from one
variant to the next within a run (its Redis round trip); `/health/live`'s, with no round trip,
by 1 or 2 µs.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import httpx
import uvloop
from asgi_lifespan import LifespanManager
from cpu_per_request import MakeRequest, drive, out, scope_for
from harness import (
    API,
    expect,
    migrate,
    new_database_name,
    open_account,
    progress_logger,
    sign_up,
    throwaway_database,
    use_in_process,
)
from starlette.middleware import Middleware

log = progress_logger("middleware")
CONCURRENCY = 16
ALL, NONE, QUIET = "all", "none", "all, no access line"


@contextmanager
def access_line_off() -> Iterator[None]:
    """The access line filtered out for the block: the logger below INFO, as at WARNING."""
    import structlog

    from app.core import request_context

    loud = request_context._access_log
    request_context._access_log = structlog.wrap_logger(
        None, wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    try:
        yield
    finally:
        request_context._access_log = loud


async def main_async(args: argparse.Namespace, database_url: str) -> None:
    """Build the variants, fill the cache once, measure them in interleaved rounds."""
    use_in_process(database_url)
    import bare_app  # after sys.path and the environment, as cpu_per_request does

    from app.main import create_app

    layers = [_name(middleware) for middleware in create_app().user_middleware]
    variants = [ALL, NONE, *(f"without {name}" for name in layers), QUIET]
    async with AsyncExitStack() as stack:
        managers: dict[str, LifespanManager] = {}
        for variant in variants:
            app = create_app()
            if variant == NONE:
                app.user_middleware = []
            elif variant.startswith("without "):
                left_out = variant.removeprefix("without ")
                app.user_middleware = [m for m in app.user_middleware if _name(m) != left_out]
            managers[variant] = await stack.enter_async_context(LifespanManager(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=managers[ALL].app))
        )
        base = "http://bench"
        _, _, token = await sign_up(client, base, "middleware")
        account = await open_account(client, base, token, "read")
        bearer = {"Authorization": f"Bearer {token}"}
        expect(await client.get(f"{base}{API}/accounts/{account}", headers=bearer), 200, "read")
        auth = [(b"authorization", f"Bearer {token}".encode())]
        paths = {
            "/health/live": ("/health/live", []),
            "cached read": (f"{API}/accounts/{account}", auth),
        }
        results: dict[tuple[str, str], list[float]] = {}
        for round_index in range(args.rounds + 1):  # the first round warms up
            for label, (path, headers) in paths.items():
                request = _fixed(path, headers)
                count = args.requests if label == "/health/live" else args.requests // 2
                if round_index == 0:
                    count = 300
                bare = await drive(bare_app.app, _fixed("/ping", []), count, CONCURRENCY)
                _keep(results, round_index, ("bare /ping", label), bare)
                for variant in variants:
                    if variant == QUIET:
                        with access_line_off():
                            cpu = await drive(managers[ALL].app, request, count, CONCURRENCY)
                    else:
                        cpu = await drive(managers[variant].app, request, count, CONCURRENCY)
                    _keep(results, round_index, (variant, label), cpu)
            log(f"round {round_index}/{args.rounds} done")
    _report(results, ["bare /ping", *variants], list(paths))


def _name(middleware: Middleware) -> str:
    return str(getattr(middleware.cls, "__name__", middleware.cls))


def _fixed(path: str, headers: list[tuple[bytes, bytes]]) -> MakeRequest:
    return lambda _: (scope_for("GET", path, headers), b"")


def _keep(
    results: dict[tuple[str, str], list[float]], round_index: int, key: tuple[str, str], cpu: float
) -> None:
    if round_index:
        results.setdefault(key, []).append(cpu)


def _report(
    results: dict[tuple[str, str], list[float]], variants: list[str], labels: list[str]
) -> None:
    header = " | ".join(f"{label} µs | vs `all`" for label in labels)
    out(f"| variant | {header} |")
    out("|---|" + "---|---|" * len(labels))
    for variant in variants:
        cells: list[Any] = []
        for label in labels:
            best = min(results[(variant, label)])
            full = min(results[(ALL, label)])
            cells += [f"{best:.0f}", "—" if variant == ALL else f"{best - full:+.0f}"]
        out(f"| {variant} | " + " | ".join(cells) + " |")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database(new_database_name(), log) as database_url:
        migrate(database_url)
        uvloop.run(main_async(args, database_url))


if __name__ == "__main__":
    main()
