"""Use cases of deposits. Never commits: the request's (or the task's) transaction does.

A deposit is created `pending` with an outbox row for its task, in one transaction. The task
(app.deposits.tasks) reads `charge_request`, charges the card through the provider with no
transaction open, then `finish_deposit` locks the row and, if it is still pending, credits the
account (system account → user account, the ledger's one posting path) and marks it succeeded,
or marks it failed. A finished deposit never changes again: running the task twice does nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.core.email import Email
from app.core.errors import NotFoundError, Refusal
from app.core.logging import get_logger
from app.core.metrics import DEPOSITS, count_after_commit
from app.core.outbox import enqueue, still_queued
from app.deposits import repository
from app.deposits.models import Deposit
from app.deposits.provider import Charge
from app.deposits.schemas import (
    ChargeRequest,
    DepositCreate,
    DepositRead,
    DepositStatus,
    WebhookEvent,
)
from app.ledger import service as ledger_service
from app.ledger.errors import CurrencyMismatchError
from app.ledger.schemas import LedgerKind, Leg
from app.users import service as users_service

logger = get_logger(__name__)
COMPLETE_TASK = "deposits.complete"
RECEIPT_TASK = "deposits.send_receipt"
WebhookOutcome = Literal["applied", "duplicate", "final"]
# Receipts are re-driven for a day; an older success without one stays as it is (ADR 0026).
RECEIPT_SWEEP_WINDOW = timedelta(days=1)


def _read(deposit: Deposit, currency: str) -> DepositRead:
    return DepositRead(
        id=deposit.id,
        status=DepositStatus(deposit.status),
        account_id=deposit.account_id,
        amount=deposit.amount,
        currency=currency,
        failure_code=deposit.failure_code,
        created_at=deposit.created_at,
        updated_at=deposit.updated_at,
    )


async def create_deposit(
    session: AsyncSession, *, owner_id: uuid.UUID, data: DepositCreate
) -> DepositRead:
    """Record a pending deposit into one of the owner's accounts, and its task (outbox)."""
    account = await accounts_service.get_account_ref(session, account_id=data.account_id)
    if account is None or account.user_id != owner_id:
        raise NotFoundError("No such account.")
    if account.currency != data.currency:
        raise CurrencyMismatchError
    deposit = await repository.add(
        session, Deposit(owner_id=owner_id, account_id=account.id, amount=data.amount)
    )
    enqueue(session, COMPLETE_TASK, deposit_id=str(deposit.id))
    logger.info("deposit_created", deposit_id=str(deposit.id), amount=data.amount)
    return _read(deposit, account.currency)


async def get_deposit(
    session: AsyncSession, *, owner_id: uuid.UUID, deposit_id: uuid.UUID
) -> DepositRead:
    """One of the owner's deposits; another user's is not found."""
    deposit = await repository.get(session, deposit_id=deposit_id)
    if deposit is None or deposit.owner_id != owner_id:
        raise NotFoundError("No such deposit.")
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    return _read(deposit, account.currency)


async def charge_request(session: AsyncSession, *, deposit_id: uuid.UUID) -> ChargeRequest | None:
    """What to charge for a pending deposit; None once it is final (a redelivery does nothing)."""
    deposit = await repository.get(session, deposit_id=deposit_id)
    if deposit is None:
        raise NotFoundError("No such deposit.")
    if deposit.status != DepositStatus.PENDING:
        return None
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    return ChargeRequest(deposit_id=deposit.id, amount=deposit.amount, currency=account.currency)


async def finish_deposit(session: AsyncSession, *, deposit_id: uuid.UUID, charge: Charge) -> str:
    """Apply the provider's answer once: credit and succeed, or fail; pending stays pending."""
    deposit = await repository.get_for_update(session, deposit_id=deposit_id)
    if deposit is None:
        raise NotFoundError("No such deposit.")
    if deposit.status != DepositStatus.PENDING or charge.status == "pending":
        return deposit.status
    if charge.status == "declined":
        deposit.status, deposit.failure_code = (
            DepositStatus.FAILED,
            charge.failure_code or "declined",
        )
        await session.flush()
        count_after_commit(session, DEPOSITS.labels(outcome=DepositStatus.FAILED))
        logger.info("deposit_failed", deposit_id=str(deposit.id), reason=deposit.failure_code)
        return deposit.status
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    system_id = await accounts_service.system_account_id(session, currency=account.currency)
    posted = await ledger_service.post_transaction(
        session,
        kind=LedgerKind.DEPOSIT,
        legs=[
            Leg(account_id=system_id, amount=-deposit.amount),
            Leg(account_id=account.id, amount=deposit.amount),
        ],
    )
    if isinstance(posted, Refusal):  # the system account may go negative: only a bug gets here
        raise posted.error
    deposit.status, deposit.ledger_transaction_id = DepositStatus.SUCCEEDED, posted
    await session.flush()
    # The receipt's task commits with the credit: whoever finished the deposit (the worker or a
    # webhook), the receipt is not forgotten.
    enqueue(session, RECEIPT_TASK, deposit_id=str(deposit.id))
    count_after_commit(session, DEPOSITS.labels(outcome=DepositStatus.SUCCEEDED))
    logger.info("deposit_succeeded", deposit_id=str(deposit.id), amount=deposit.amount)
    return deposit.status


async def apply_webhook(session: AsyncSession, *, event: WebhookEvent) -> WebhookOutcome:
    """Apply a (verified) provider event once: finish its deposit unless it is already final.

    The event id is recorded in this transaction: a redelivery is a `duplicate` and does
    nothing; an event about a finished deposit is recorded and ignored (`final`).
    """
    deposit_id = event.data.deposit_id
    # Locked first: a worker finishing the same deposit waits, or has finished it already.
    deposit = await repository.get_for_update(session, deposit_id=deposit_id)
    if deposit is None:
        raise NotFoundError("No such deposit.")
    if not await repository.record_event(
        session, event_id=event.id, event_type=event.type, deposit_id=deposit_id
    ):
        logger.info("webhook_duplicate", event_id=event.id, deposit_id=str(deposit_id))
        return "duplicate"
    if deposit.status != DepositStatus.PENDING:
        logger.info(
            "webhook_for_final_deposit", event_id=event.id, status=deposit.status, type=event.type
        )
        return "final"
    if event.type == "charge.succeeded":
        charge = Charge(status="succeeded")
    else:
        charge = Charge(status="declined", failure_code=event.data.failure_code)
    status = await finish_deposit(session, deposit_id=deposit_id, charge=charge)
    logger.info("webhook_applied", event_id=event.id, deposit_id=str(deposit_id), status=status)
    return "applied"


# ISO 4217 currencies whose minor unit is not a hundredth (the rest have two decimals).
_DECIMALS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}


def format_amount(amount: int, currency: str) -> str:
    """Minor units as a person reads them: 123456 EUR → "1,234.56 EUR"."""
    decimals = _DECIMALS.get(currency, 2)
    # Integer arithmetic: a float would round the cents of amounts past 2**53.
    whole, fraction = divmod(amount, 10**decimals)
    return f"{whole:,}{f'.{fraction:0{decimals}d}' if decimals else ''} {currency}"


async def receipt_email(session: AsyncSession, *, deposit_id: uuid.UUID) -> Email | None:
    """The receipt of a succeeded deposit, to its owner; None unless it succeeded."""
    deposit = await repository.get(session, deposit_id=deposit_id)
    if deposit is None or deposit.status != DepositStatus.SUCCEEDED:
        return None
    owner = await users_service.get_user(session, user_id=deposit.owner_id)
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    amount = format_amount(deposit.amount, account.currency)
    return Email(
        to=owner.email,
        subject=f"Deposit received: {amount}",
        text=(
            f"Hello {owner.full_name},\n\n"
            f"{amount} from your card reached your account.\n"
            f"Deposit: {deposit.id}\nAccount: {deposit.account_id}\n"
            f"Date: {deposit.updated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            "fastapi-ledger\n"
        ),
    )


async def claim_receipt(
    session: AsyncSession, *, deposit_id: uuid.UUID, claim_id: uuid.UUID
) -> bool:
    """Claim the one receipt of a deposit before sending it; False if it was claimed before.

    `claim_id` names the attempt: one that loses its commit's answer asks `receipt_claimed_by`.
    """
    return await repository.claim_receipt(session, deposit_id=deposit_id, claim_id=claim_id)


async def receipt_claimed_by(session: AsyncSession, *, deposit_id: uuid.UUID) -> uuid.UUID | None:
    """The attempt whose claim on the deposit's receipt stands; None if no claim stands."""
    return await repository.receipt_claim_id(session, deposit_id=deposit_id)


async def receipt_sent(session: AsyncSession, *, deposit_id: uuid.UUID) -> None:
    """Record that the mail server accepted the receipt."""
    await repository.mark_receipt_sent(session, deposit_id=deposit_id)


async def release_receipt(session: AsyncSession, *, deposit_id: uuid.UUID) -> None:
    """Give back the claim of a receipt that was certainly not sent, so it may be sent later."""
    await repository.release_receipt(session, deposit_id=deposit_id)


@dataclass(frozen=True)
class Swept:
    """What one sweep handed back to the workers."""

    redriven: int
    receipts: int


async def sweep(session: AsyncSession, *, stale_after: timedelta, limit: int = 500) -> Swept:
    """Re-drive what a lost task left behind: stale pending deposits, and missing receipts.

    A deposit still pending after `stale_after` (its task failed for good, or waits for the
    provider's webhook) gets its task again, and is touched so the next sweep waits as long
    again; a success of the last day without a receipt claim gets its receipt task. Both go
    through the outbox: they leave with this transaction's commit. A task still waiting in the
    outbox (no worker has relayed it yet) is not added a second time.
    """
    pending = await repository.stale_pending(session, untouched_for=stale_after, limit=limit)
    if pending:
        await repository.touch(session, deposit_ids=pending)
    redriven = await _enqueue_missing(session, COMPLETE_TASK, pending)
    unreceipted = await repository.unreceipted(
        session, untouched_for=stale_after, within=RECEIPT_SWEEP_WINDOW, limit=limit
    )
    receipts = await _enqueue_missing(session, RECEIPT_TASK, unreceipted)
    return Swept(redriven=redriven, receipts=receipts)


async def _enqueue_missing(session: AsyncSession, task_name: str, ids: list[uuid.UUID]) -> int:
    wanted = [str(deposit_id) for deposit_id in ids]
    queued = await still_queued(session, task_name, key="deposit_id", values=wanted)
    missing = [deposit_id for deposit_id in wanted if deposit_id not in queued]
    for deposit_id in missing:
        enqueue(session, task_name, deposit_id=deposit_id)
    return len(missing)
