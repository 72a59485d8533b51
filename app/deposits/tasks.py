"""Deposits' background work: take ids, open their own sessions, never hold one while waiting.

Each task body is idempotent (a redelivered message, or a retry sent before the old message
was acknowledged, runs it twice). Transient errors — the provider or the mail server not
answering — are retried inside the task with a growing pause (1, 2, 4, 8 s) while the task's
timeout leaves room (app.core.broker: at most half of TASK_REDELIVERY_SECONDS).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import Context, TaskiqDepends

from app.core.broker import TASK_TIMEOUT_SECONDS, broker
from app.core.email import EmailInDoubtError, EmailNotSentError, EmailSender
from app.core.logging import get_logger
from app.deposits import service as deposits_service
from app.deposits.provider import PaymentProvider, ProviderUnavailableError

logger = get_logger(__name__)
COMPLETE_TASK = deposits_service.COMPLETE_TASK
RECEIPT_TASK = deposits_service.RECEIPT_TASK
SWEEP_TASK = "deposits.sweep"
ATTEMPTS = 5
T = TypeVar("T")


async def with_backoff(
    run: Callable[[], Awaitable[T]],
    *,
    transient: type[Exception],
    attempts: int = ATTEMPTS,
    budget_seconds: float = TASK_TIMEOUT_SECONDS * 0.7,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `run`, again after 1, 2, 4… s while it raises `transient`; the last error escapes.

    No retry starts past `budget_seconds`: the task's timeout would cut it off mid-call, and
    what is left over is the sweeper's (the message is acknowledged once the task raised).
    """
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except transient as exc:
            pause = 2 ** (attempt - 1)
            if attempt == attempts or time.monotonic() - started + pause > budget_seconds:
                raise
            logger.warning("task_retrying", attempt=attempt, error=type(exc).__name__)
            await sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


async def recorded(
    sessions: async_sessionmaker[AsyncSession], record: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Record an outcome from outside (a charge, an email's fate) in a transaction of its own.

    Once the provider or the mail server has answered, this is the only place that answer is
    written: the task is acknowledged when it ends, and nothing would call them again for it
    (the sweeper waits minutes for a charge, and leaves a claimed receipt alone for good). So a
    database error (a connection dropped by a restart or pg_terminate_backend, a statement
    timeout) is retried on a fresh connection with backoff. `record` must be idempotent.
    """

    async def once() -> T:
        async with sessions() as session, session.begin():
            return await record(session)

    return await with_backoff(once, transient=DBAPIError)


async def complete_deposit(
    deposit_id: uuid.UUID, *, sessions: async_sessionmaker[AsyncSession], provider: PaymentProvider
) -> str:
    """Charge a pending deposit and finish it; the resulting status. Idempotent.

    Two short transactions around the provider's call: no row lock and no pooled connection is
    held while the card is charged. ProviderUnavailableError propagates: the caller retries.
    The provider's answer is `recorded` (retried on database errors).
    """
    async with sessions() as session:
        request = await deposits_service.charge_request(session, deposit_id=deposit_id)
    if request is None:
        return "final"
    logger.info("deposit_charging", deposit_id=str(deposit_id), amount=request.amount)
    charge = await provider.charge(
        deposit_id=request.deposit_id, amount=request.amount, currency=request.currency
    )
    return await recorded(
        sessions,
        lambda session: deposits_service.finish_deposit(
            session, deposit_id=deposit_id, charge=charge
        ),
    )


async def send_receipt(
    deposit_id: uuid.UUID, *, sessions: async_sessionmaker[AsyncSession], sender: EmailSender
) -> str:
    """Send a succeeded deposit's receipt at most once; what happened, as a word.

    `sent`, `already_claimed`, `no_receipt` (not succeeded) or `in_doubt`. The claim commits
    before the email leaves, so no redelivery can send it twice. A server that certainly did
    not take it (EmailNotSentError) gets the claim back and the error propagates, to be
    retried; a broken conversation (EmailInDoubtError), or a worker that dies between the claim
    and the server's answer, leaves a claim without `sent_at`: that receipt is given up rather
    than risked twice (ADR 0026). A claim whose commit lost its answer is looked up by this
    attempt's id: its own claim goes on to be sent, since nothing has left yet.
    """
    claim_id = uuid.uuid4()  # this attempt's: it tells its own claim from another worker's
    email = None
    try:
        async with sessions() as session, session.begin():
            email = await deposits_service.receipt_email(session, deposit_id=deposit_id)
            if email is None:
                return "no_receipt"
            if not await deposits_service.claim_receipt(
                session, deposit_id=deposit_id, claim_id=claim_id
            ):
                return "already_claimed"
    except DBAPIError:
        # The claim may have committed with the answer lost (a connection dropped mid-commit).
        # Nothing has been sent yet: if the claim that stands is this attempt's, send it;
        # otherwise the error stands, and a retry finds the receipt unclaimed or claimed.
        claimed_by = await recorded(
            sessions,
            lambda session: deposits_service.receipt_claimed_by(session, deposit_id=deposit_id),
        )
        if email is None or claimed_by != claim_id:
            raise
        logger.info("receipt_claim_confirmed", deposit_id=str(deposit_id))
    try:
        await sender.send(email)
    except EmailNotSentError:
        await recorded(
            sessions,
            lambda session: deposits_service.release_receipt(session, deposit_id=deposit_id),
        )
        raise
    except EmailInDoubtError:
        # It may have gone out: the claim stays, and nothing sends it again (at most once).
        logger.warning("receipt_in_doubt", deposit_id=str(deposit_id))
        return "in_doubt"
    await recorded(
        sessions, lambda session: deposits_service.receipt_sent(session, deposit_id=deposit_id)
    )
    logger.info("receipt_sent", deposit_id=str(deposit_id))
    return "sent"


@broker.task(task_name=SWEEP_TASK, timeout=TASK_TIMEOUT_SECONDS, schedule=[{"cron": "* * * * *"}])
async def sweep_task(context: Annotated[Context, TaskiqDepends()]) -> dict[str, int]:
    """The sweeper, every minute: `deposits_service.sweep` (counts of what it re-drove).

    Pending deposits untouched for twice the redelivery window (the broker's own redelivery
    has had its chance) get their task again, and missing receipts theirs.
    """
    stale_after = timedelta(seconds=2 * context.state.settings.TASK_REDELIVERY_SECONDS)
    async with context.state.sessions() as session, session.begin():
        swept = await deposits_service.sweep(session, stale_after=stale_after)
    if swept.redriven or swept.receipts:
        logger.info("deposits_swept", redriven=swept.redriven, receipts=swept.receipts)
    return {"redriven": swept.redriven, "receipts": swept.receipts}


@broker.task(task_name=COMPLETE_TASK, timeout=TASK_TIMEOUT_SECONDS)
async def complete_deposit_task(
    deposit_id: str, context: Annotated[Context, TaskiqDepends()]
) -> str:
    """The worker's entry point: `complete_deposit`, retried with backoff on provider errors."""
    state = context.state
    return await with_backoff(
        lambda: complete_deposit(
            uuid.UUID(deposit_id), sessions=state.sessions, provider=state.provider
        ),
        transient=ProviderUnavailableError,
    )


@broker.task(task_name=RECEIPT_TASK, timeout=TASK_TIMEOUT_SECONDS)
async def send_receipt_task(deposit_id: str, context: Annotated[Context, TaskiqDepends()]) -> str:
    """The worker's entry point: `send_receipt`, retried with backoff while the server refuses."""
    state = context.state
    return await with_backoff(
        lambda: send_receipt(uuid.UUID(deposit_id), sessions=state.sessions, sender=state.email),
        transient=EmailNotSentError,
    )
