"""The scheduler's jobs, called directly as a worker runs them, and their schedules.

The schedules come from the tasks' own `schedule` labels (LabelScheduleSource): nothing is
stored or pickled. One real scheduler tick is tests/e2e/test_scheduler.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import cast

import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import Context
from taskiq.schedule_sources import LabelScheduleSource

from app.auth.models import RefreshToken
from app.auth.tasks import delete_expired_refresh_tokens_task
from app.core.cleanup import CLEANUP_BATCH, delete_in_batches, expired_batch
from app.core.config import get_settings
from app.core.db import Base
from app.core.models import TaskOutboxEntry
from app.core.security import hash_refresh_token
from app.deposits.models import Deposit
from app.deposits.tasks import sweep_task
from app.idempotency import repository as idempotency_repository
from app.idempotency import service as idempotency_service
from app.idempotency.models import IdempotencyKey
from app.idempotency.tasks import delete_expired_keys_task
from app.worker import scheduler
from tests.conftest import LogReader
from tests.factories import idempotency_headers, open_account, signed_in_user

HOUR = timedelta(hours=1)


async def test_every_job_has_one_cron_schedule_from_its_labels() -> None:
    (source,) = scheduler.sources  # what `taskiq scheduler app.worker:scheduler` reads
    assert isinstance(source, LabelScheduleSource)
    await source.startup()
    schedules = await source.get_schedules()
    assert {(job.task_name, job.cron) for job in schedules} == {
        ("deposits.sweep", "* * * * *"),
        ("idempotency.delete_expired", "*/15 * * * *"),
        ("auth.delete_expired_refresh_tokens", "7 * * * *"),
    }


def _context(sessions: async_sessionmaker[AsyncSession]) -> Context:
    # What the jobs use of a worker's context: the settings and session factory of its start-up.
    state = SimpleNamespace(settings=get_settings(), sessions=sessions)
    return cast(Context, SimpleNamespace(state=state))


async def test_the_clean_up_jobs_delete_what_expired(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    account = await open_account(live_http, user)
    headers = idempotency_headers(user)
    response = await live_http.post(
        "/api/v1/deposits",
        json={"account_id": account["id"], "amount": 100, "currency": "EUR"},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    past = datetime.now(UTC) - timedelta(minutes=1)
    token = RefreshToken.token_hash == hash_refresh_token(user.refresh_token)
    key = IdempotencyKey.key == headers["Idempotency-Key"]
    async with sessions() as session, session.begin():
        await session.execute(
            update(RefreshToken)
            .where(token)
            .values(created_at=past - timedelta(days=1), expires_at=past)
        )
        await session.execute(update(IdempotencyKey).where(key).values(expires_at=past))

    assert await delete_expired_refresh_tokens_task.original_func(_context(sessions)) >= 1
    assert await delete_expired_keys_task.original_func(_context(sessions)) >= 1
    async with sessions() as session:
        assert await session.scalar(select(RefreshToken.id).where(token)) is None
        assert await session.scalar(select(IdempotencyKey.id).where(key)) is None


async def test_the_sweeper_job_reports_what_it_redrove(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    account = await open_account(live_http, user)
    response = await live_http.post(
        "/api/v1/deposits",
        json={"account_id": account["id"], "amount": 100, "currency": "EUR"},
        headers=idempotency_headers(user),
    )
    deposit_id = uuid.UUID(response.json()["id"])
    async with sessions() as session, session.begin():  # its task was relayed, then lost
        await session.execute(
            delete(TaskOutboxEntry).where(TaskOutboxEntry.arguments.contains(str(deposit_id)))
        )
        await session.execute(
            update(Deposit)
            .where(Deposit.id == deposit_id)
            .values(updated_at=datetime.now(UTC) - timedelta(days=30))
        )
    swept = await sweep_task.original_func(_context(sessions))
    assert swept["redriven"] >= 1
    async with sessions() as session:
        deposit = await session.get(Deposit, deposit_id)
        assert deposit is not None
        assert deposit.updated_at > datetime.now(UTC) - timedelta(minutes=1)  # touched


async def test_a_long_backlog_is_deleted_in_batches_each_kept_when_the_budget_ends(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession], log_lines: LogReader
) -> None:
    user_id = uuid.UUID((await signed_in_user(live_http)).id)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        for number, expires_at in enumerate([now - HOUR] * 25 + [now + HOUR] * 2):
            await idempotency_repository.add(
                session,
                user_id=user_id,
                endpoint="POST /api/v1/payments",
                key=f"backlog-{number}",
                fingerprint="f" * 64,
                response_status=201,
                response_body=b"{}",
                expires_at=expires_at,
            )

    async def left() -> tuple[int, int]:
        async with sessions() as session:
            mine = select(func.count()).where(IdempotencyKey.user_id == user_id)
            expired = await session.scalar(mine.where(IdempotencyKey.expires_at < now))
            return int(expired or 0), int(await session.scalar(mine) or 0) - int(expired or 0)

    # The budget is spent after the first batch: that batch is committed, the rest waits.
    batches = partial(
        delete_in_batches,
        sessions,
        idempotency_service.delete_expired_keys,
        now=now,
        event="test_keys_deleted",
        batch_size=10,
    )
    assert await batches(budget_seconds=0) == (10, True)
    assert await left() == (15, 2)
    # The next run goes on until a batch comes back short; what has not expired stays.
    assert await batches(budget_seconds=60) == (15, False)
    assert await left() == (0, 2)
    assert [
        (line["count"], line["more_left"])
        for line in log_lines()
        if line["event"] == "test_keys_deleted"
    ] == [(10, True), (15, False)]


@pytest.mark.parametrize("model", [IdempotencyKey, RefreshToken], ids=lambda m: m.__tablename__)
async def test_a_clean_up_batch_is_found_through_the_expiry_index(
    session: AsyncSession, model: type[Base]
) -> None:
    statement = expired_batch(model, before=datetime.now(UTC), limit=CLEANUP_BATCH)
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    await session.execute(text("SET LOCAL enable_seqscan = off"))  # tables of a few rows here
    plan = "\n".join((await session.execute(text(f"EXPLAIN {sql}"))).scalars().all())
    assert f"ix_{model.__tablename__}_expires_at" in plan, plan  # the batch, oldest first
    assert "LockRows" in plan  # its rows locked, skipping those already held
    assert "Index Cond: (id = ANY" in plan  # then deleted by primary key, no scan of the table
