"""The expired-row clean-up: one DELETE against the two ways of deleting in batches.

    .venv/bin/python bench/cleanup_batches.py [--expired 300000] [--live 0] [--batch 5000]

The scheduled clean-ups (`app/core/cleanup.py`) delete expired idempotency keys and refresh
tokens in batches, each a transaction of its own. Here, on a throw-away database with a table
shaped like `idempotency_keys` (a uuid key, an index on `expires_at`, ~120 bytes of body), the
same expired rows are deleted three ways, each on a freshly filled and vacuumed table that may
also hold rows not yet expired (`--live`, as a real table does):

- `one DELETE`: everything expired in one statement (the baseline: the fastest, one transaction
  of any size);
- `id IN (…)`: batches whose ids come from a LIMIT subquery (PostgreSQL hash-joins them against
  a scan of the whole table, so each batch costs the table's size);
- `id = ANY(ARRAY(…))`: what the app runs; each batch is found on the expiry index and deleted
  through the primary key, at a cost that does not grow with the table.

The report is the total time against the baseline's, the number of batches and the longest
transaction. Needs PostgreSQL at 127.0.0.1:5432 (as `make bench`); nothing runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg  # type: ignore[import-untyped]
from harness import new_database_name, progress_logger, throwaway_database

log = progress_logger("cleanup-batches")

TABLE = """
CREATE TABLE keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    body bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ix_keys_expires_at ON keys (expires_at);
"""
# $1 rows expired one second apart, then $2 rows that expire from tomorrow on.
FILL = """
INSERT INTO keys (user_id, body, expires_at)
SELECT gen_random_uuid(), convert_to(repeat('x', 120), 'UTF8'), now() - i * interval '1 second'
FROM generate_series(1, $1) AS i
UNION ALL
SELECT gen_random_uuid(), convert_to(repeat('x', 120), 'UTF8'),
       now() + interval '1 day' + i * interval '1 second'
FROM generate_series(1, $2) AS i
"""
ONE_DELETE = "DELETE FROM keys WHERE expires_at < now()"
WAYS = {
    "id IN (…)": """
        DELETE FROM keys WHERE id IN (
            SELECT id FROM keys WHERE expires_at < now()
            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
    """,
    "id = ANY(ARRAY(…))": """
        DELETE FROM keys WHERE id = ANY(ARRAY(
            SELECT id FROM keys WHERE expires_at < now()
            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))
    """,
}


async def _refill(connection: asyncpg.Connection, expired: int, live: int) -> None:
    await connection.execute("DROP TABLE IF EXISTS keys")
    await connection.execute(TABLE)
    await connection.execute(FILL, expired, live)
    await connection.execute("VACUUM ANALYZE keys")


def _deleted(status: str) -> int:
    return int(status.split()[-1])  # "DELETE 5000"


def _check(deleted: int, expired: int) -> None:
    if deleted != expired:
        raise SystemExit(f"deleted {deleted} rows, not the {expired} expired")


async def measure(url: str, expired: int, live: int, batch: int) -> None:
    """Print one markdown row per way: the baseline first, then each batched way."""
    connection = await asyncpg.connect(url)
    try:
        await _refill(connection, expired, live)
        started = time.perf_counter()
        deleted = _deleted(await connection.execute(ONE_DELETE))
        baseline = time.perf_counter() - started
        _check(deleted, expired)
        print(f"| one DELETE | {baseline:.2f} s | 1 | 1 | {baseline * 1000:.0f} ms |")
        for label, statement in WAYS.items():
            await _refill(connection, expired, live)
            longest, batches, deleted = 0.0, 0, 0
            started = time.perf_counter()
            while True:
                began = time.perf_counter()
                count = _deleted(await connection.execute(statement, batch))
                longest = max(longest, time.perf_counter() - began)
                batches, deleted = batches + 1, deleted + count
                if count < batch:
                    break
            total = time.perf_counter() - started
            _check(deleted, expired)
            print(
                f"| {label} | {total:.2f} s | {total / baseline:.1f} times | {batches} "
                f"| {longest * 1000:.0f} ms |"
            )
    finally:
        await connection.close()


def main() -> None:
    """Fill, delete and report on a throw-away database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expired", type=int, default=300_000)
    parser.add_argument("--live", type=int, default=0)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    with throwaway_database(new_database_name(), log) as url:
        log(f"{args.expired} expired rows, {args.live} live, batches of {args.batch}")
        print("| way | total | against one DELETE | transactions | longest transaction |")
        print("|---|---|---|---|---|")
        dsn = url.replace("+asyncpg", "")
        asyncio.run(measure(dsn, args.expired, args.live, args.batch))


if __name__ == "__main__":
    main()
