"""Receipts (sent at most once) and the sweeper that re-drives what a lost task left behind.

The task bodies run in-process against the real database; the email server is a recording
stand-in whose failures are the two kinds SmtpEmailSender reports.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import create_engine, create_session_factory
from app.core.email import Email, EmailInDoubtError, EmailNotSentError
from app.core.models import TaskOutboxEntry
from app.deposits import service as deposits_service
from app.deposits.models import Deposit, DepositReceipt
from app.deposits.provider import Charge, FakeProvider
from app.deposits.tasks import complete_deposit, send_receipt
from tests.factories import SignedIn, make_deposit, signed_in_user

STALE_AFTER = timedelta(minutes=1)


class Outbox:
    """A recording email server: takes each email, or fails with the errors it is given."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[Email] = []

    async def send(self, message: Email) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)

    async def aclose(self) -> None:
        pass


def _server_message(kind: bytes, *fields: tuple[bytes, str]) -> bytes:
    """One message of PostgreSQL's wire protocol, as the server sends it."""
    body = b"".join(code + text.encode() + b"\0" for code, text in fields) + b"\0"
    return kind + struct.pack("!i", len(body) + 4) + body


# What a backend sends just before it closes its socket, after pg_terminate_backend.
TERMINATED = _server_message(
    b"E",
    (b"S", "FATAL"),
    (b"V", "FATAL"),
    (b"C", "57P01"),
    (b"M", "terminating connection due to administrator command"),
)


async def _deposit(client: AsyncClient, user: SignedIn, amount: int) -> uuid.UUID:
    return uuid.UUID((await make_deposit(client, user, amount))[1])


async def _succeeded(
    client: AsyncClient, user: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> uuid.UUID:
    deposit_id = await _deposit(client, user, 1250)
    provider = FakeProvider(latency_ms=0)
    assert await complete_deposit(deposit_id, sessions=sessions, provider=provider) == "succeeded"
    return deposit_id


async def _receipt(
    sessions: async_sessionmaker[AsyncSession], deposit_id: uuid.UUID
) -> DepositReceipt | None:
    async with sessions() as session:
        return await session.get(DepositReceipt, deposit_id)


async def _tasks(
    sessions: async_sessionmaker[AsyncSession], task_name: str, deposit_id: uuid.UUID
) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TaskOutboxEntry)
            .where(
                TaskOutboxEntry.task_name == task_name,
                TaskOutboxEntry.arguments.contains(str(deposit_id)),
            )
        )
    return count or 0


async def _age(
    sessions: async_sessionmaker[AsyncSession], deposit_id: uuid.UUID, by: timedelta
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Deposit).where(Deposit.id == deposit_id).values(updated_at=func.now() - by)
        )


async def _relayed(sessions: async_sessionmaker[AsyncSession], deposit_id: uuid.UUID) -> None:
    """As the relay does: the deposit's tasks leave the outbox for the broker (and are lost)."""
    async with sessions() as session, session.begin():
        await session.execute(
            delete(TaskOutboxEntry).where(TaskOutboxEntry.arguments.contains(str(deposit_id)))
        )


async def test_a_receipt_is_sent_once_however_often_its_task_runs(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    deposit_id = await _succeeded(live_http, user, sessions)
    server = Outbox()
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "sent"
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "already_claimed"
    (email,) = server.sent
    assert email.to == user.email
    assert email.subject == "Deposit received: 12.50 EUR"
    assert str(deposit_id) in email.text
    receipt = await _receipt(sessions, deposit_id)
    assert receipt is not None
    assert receipt.sent_at is not None


async def test_no_receipt_for_a_deposit_that_did_not_succeed(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    declined = await _deposit(live_http, user, 1013)
    assert (
        await complete_deposit(declined, sessions=sessions, provider=FakeProvider(latency_ms=0))
        == "failed"
    )
    pending = await _deposit(live_http, user, 1077)
    server = Outbox()
    for deposit_id in (declined, pending, uuid.uuid4()):
        assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "no_receipt"
        assert await _receipt(sessions, deposit_id) is None
    assert server.sent == []


async def test_a_refusing_server_gets_the_claim_back_and_a_retry_sends_it(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    deposit_id = await _succeeded(live_http, user, sessions)
    server = Outbox(EmailNotSentError("450 try later"))
    with pytest.raises(EmailNotSentError):
        await send_receipt(deposit_id, sessions=sessions, sender=server)
    assert await _receipt(sessions, deposit_id) is None  # given back: may be sent again
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "sent"
    assert len(server.sent) == 1


async def test_a_conversation_that_broke_off_keeps_the_claim_and_is_never_resent(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    deposit_id = await _succeeded(live_http, user, sessions)
    server = Outbox(EmailInDoubtError("no answer after DATA"))
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "in_doubt"
    receipt = await _receipt(sessions, deposit_id)
    assert receipt is not None
    assert receipt.sent_at is None
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "already_claimed"
    # The sweeper does not re-drive it either, however old it gets: at most once.
    await _age(sessions, deposit_id, STALE_AFTER * 2)
    async with sessions() as session, session.begin():
        await deposits_service.sweep(session, stale_after=STALE_AFTER)
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, deposit_id) == 1  # finish's own
    assert server.sent == []


@asynccontextmanager
async def _dropping_once(
    live_app: FastAPI, after: Callable[[], bool]
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list[int]]]:
    """A worker's own pool whose first connection checked out once `after()` holds is dropped.

    The server's FATAL has arrived on it but not yet its socket's close, so the pool's checkout
    check cannot see it (chaos caught this: "cannot switch to state …; another operation (2) is
    in progress"). Yields the sessions and the pids of the connections dropped.
    """
    engine = create_engine(live_app.state.settings)
    dropped: list[int] = []

    def the_server_drops_it(dbapi_connection: Any, record: object, proxy: object) -> None:
        if after() and not dropped:
            dropped.append(dbapi_connection.driver_connection.get_server_pid())
            dbapi_connection.driver_connection._protocol.data_received(TERMINATED)

    event.listen(engine.sync_engine, "checkout", the_server_drops_it)
    try:
        yield create_session_factory(engine), dropped
    finally:
        await engine.dispose()


async def test_a_receipt_sent_as_the_database_drops_the_connection_is_still_recorded(
    live_app: FastAPI, live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Nothing but this task would ever record that the email left: it retries the record."""
    user = await signed_in_user(live_http)
    deposit_id = await _succeeded(live_http, user, sessions)
    server = Outbox()
    async with _dropping_once(live_app, after=lambda: bool(server.sent)) as (worker, dropped):
        outcome = await send_receipt(deposit_id, sessions=worker, sender=server)
    assert dropped  # the fault did happen, after the email left
    assert outcome == "sent"
    assert len(server.sent) == 1
    receipt = await _receipt(sessions, deposit_id)
    assert receipt is not None
    assert receipt.sent_at is not None


@pytest.fixture
async def deposit_id(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> uuid.UUID:
    """A fresh user's succeeded deposit, its receipt not sent yet."""
    return await _succeeded(live_http, await signed_in_user(live_http), sessions)


def _claim_then(monkeypatch: pytest.MonkeyPatch, *, commit_lands: bool) -> list[uuid.UUID]:
    """The receipt's claim fails once with a dropped connection's error; returns the claims.

    `commit_lands`: the error comes after the claim committed (its answer lost); otherwise it
    comes at the claim's statement, and nothing commits.
    """
    claim = deposits_service.claim_receipt
    claims: list[uuid.UUID] = []

    async def failing_once(
        session: AsyncSession, *, deposit_id: uuid.UUID, claim_id: uuid.UUID
    ) -> bool:
        claims.append(claim_id)
        lost = DBAPIError("COMMIT", {}, ConnectionResetError("connection lost"))
        if len(claims) > 1:
            return await claim(session, deposit_id=deposit_id, claim_id=claim_id)
        if not commit_lands:
            raise lost
        claimed = await claim(session, deposit_id=deposit_id, claim_id=claim_id)

        def answer_lost(_: object) -> None:
            raise lost

        event.listen(session.sync_session, "after_commit", answer_lost, once=True)
        return claimed

    monkeypatch.setattr(deposits_service, "claim_receipt", failing_once)
    return claims


async def test_a_claim_whose_commit_lost_its_answer_is_recognised_and_sent(
    deposit_id: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the task failed, its retry found the receipt claimed, and nothing ever sent it."""
    claims = _claim_then(monkeypatch, commit_lands=True)
    server = Outbox()
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "sent"
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "already_claimed"
    assert len(server.sent) == 1
    receipt = await _receipt(sessions, deposit_id)
    assert receipt is not None
    assert (receipt.claim_id, receipt.sent_at is not None) == (claims[0], True)


async def test_a_claim_that_did_not_commit_is_not_sent_and_its_retry_is(
    deposit_id: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _claim_then(monkeypatch, commit_lands=False)
    server = Outbox()
    with pytest.raises(DBAPIError):
        await send_receipt(deposit_id, sessions=sessions, sender=server)
    assert server.sent == []
    assert await _receipt(sessions, deposit_id) is None
    assert await send_receipt(deposit_id, sessions=sessions, sender=server) == "sent"
    assert len(server.sent) == 1


async def test_another_attempts_claim_is_never_taken_for_ones_own(
    deposit_id: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The commit's answer is lost, and the claim that stands is another attempt's (it may be
    # sending right now): this attempt must not send.
    _claim_then(monkeypatch, commit_lands=True)
    someone_else = uuid.uuid4()

    async def claimed_by_another(session: AsyncSession, *, deposit_id: uuid.UUID) -> uuid.UUID:
        return someone_else

    monkeypatch.setattr(deposits_service, "receipt_claimed_by", claimed_by_another)
    server = Outbox()
    with pytest.raises(DBAPIError):
        await send_receipt(deposit_id, sessions=sessions, sender=server)
    assert server.sent == []


async def test_a_charge_answered_as_the_database_drops_the_connection_is_still_recorded(
    live_app: FastAPI, live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    deposit_id = await _deposit(live_http, user, 1250)
    provider = FakeProvider(latency_ms=0)
    charged: list[uuid.UUID] = []
    charge = provider.charge

    async def counted(*, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        answer = await charge(deposit_id=deposit_id, amount=amount, currency=currency)
        charged.append(deposit_id)
        return answer

    provider.charge = counted  # type: ignore[method-assign]
    async with _dropping_once(live_app, after=lambda: bool(charged)) as (worker, dropped):
        outcome = await complete_deposit(deposit_id, sessions=worker, provider=provider)
    assert dropped
    assert (outcome, charged) == ("succeeded", [deposit_id])  # recorded, not charged again
    async with sessions() as session:
        deposit = await session.get(Deposit, deposit_id)
    assert deposit is not None
    assert deposit.status == "succeeded"


async def test_the_sweeper_redrives_stale_pending_deposits_and_missing_receipts_only(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    stale = await _deposit(live_http, user, 3000)  # its task was lost: still pending
    fresh = await _deposit(live_http, user, 3100)  # its task may still be running
    unreceipted = await _succeeded(live_http, user, sessions)  # its receipt task was lost
    for deposit_id in (stale, fresh, unreceipted):
        await _relayed(sessions, deposit_id)
    # Oldest first, so these come before anything other tests left behind.
    await _age(sessions, stale, timedelta(days=30))
    await _age(sessions, unreceipted, timedelta(hours=23))

    async with sessions() as session, session.begin():
        swept = await deposits_service.sweep(session, stale_after=STALE_AFTER)

    assert swept.redriven >= 1
    assert swept.receipts >= 1
    assert await _tasks(sessions, deposits_service.COMPLETE_TASK, stale) == 1
    assert await _tasks(sessions, deposits_service.COMPLETE_TASK, fresh) == 0
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, unreceipted) == 1

    # The next tick, with those tasks relayed and lost again: the re-driven deposit was
    # touched, so it waits a whole `stale_after` again; the receipt is re-driven again.
    await _relayed(sessions, stale)
    await _relayed(sessions, unreceipted)
    async with sessions() as session, session.begin():
        await deposits_service.sweep(session, stale_after=STALE_AFTER)
    assert await _tasks(sessions, deposits_service.COMPLETE_TASK, stale) == 0
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, unreceipted) == 1

    # A receipt sent is never swept again.
    await _relayed(sessions, unreceipted)
    assert await send_receipt(unreceipted, sessions=sessions, sender=Outbox()) == "sent"
    async with sessions() as session, session.begin():
        await deposits_service.sweep(session, stale_after=STALE_AFTER)
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, unreceipted) == 0


async def test_while_no_worker_relays_the_sweeper_adds_no_second_copy(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Workers down for an hour: the deposit's one task waits in the outbox, not sixty."""
    user = await signed_in_user(live_http)
    pending = await _deposit(live_http, user, 3200)  # its task is still in the outbox
    succeeded = await _succeeded(live_http, user, sessions)  # so is its receipt task
    await _age(sessions, pending, timedelta(days=30))
    await _age(sessions, succeeded, timedelta(hours=23))
    for _ in range(3):
        async with sessions() as session, session.begin():
            await deposits_service.sweep(session, stale_after=STALE_AFTER)
        await _age(sessions, pending, timedelta(days=30))
    assert await _tasks(sessions, deposits_service.COMPLETE_TASK, pending) == 1
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, succeeded) == 1


async def test_a_receipt_older_than_the_sweep_window_is_left_alone(
    live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    old = await _succeeded(live_http, user, sessions)
    await _relayed(sessions, old)
    await _age(sessions, old, deposits_service.RECEIPT_SWEEP_WINDOW + timedelta(hours=1))
    async with sessions() as session, session.begin():
        await deposits_service.sweep(session, stale_after=STALE_AFTER)
    assert await _tasks(sessions, deposits_service.RECEIPT_TASK, old) == 0
