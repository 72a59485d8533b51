"""Use cases of deposits. Never commits: the request's (or the task's) transaction does.

A deposit is created `pending` with an outbox row for its task, in one transaction. The task
(app.deposits.tasks) reads `charge_request`, charges the card through the provider with no
transaction open, then `finish_deposit` locks the row and, if it is still pending, credits the
account (system account → user account, the ledger's one posting path) and marks it succeeded,
or marks it failed. A finished deposit never changes again: running the task twice does nothing.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.accounts.errors import CurrencyMismatchError
from app.accounts.schemas import Leg
from app.core.errors import NotFoundError, Refusal
from app.core.logging import get_logger
from app.core.outbox import enqueue
from app.deposits import repository
from app.deposits.models import STATUS_FAILED, STATUS_PENDING, STATUS_SUCCEEDED, Deposit
from app.deposits.provider import Charge
from app.deposits.schemas import ChargeRequest, DepositCreate, DepositRead, WebhookEvent

logger = get_logger(__name__)
COMPLETE_TASK = "deposits.complete"
RECEIPT_TASK = "deposits.send_receipt"
WebhookOutcome = Literal["applied", "duplicate", "final"]


def _read(deposit: Deposit, currency: str) -> DepositRead:
    return DepositRead(
        id=deposit.id,
        status=deposit.status,  # type: ignore[arg-type]  # the CHECK constraint's values
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
    if deposit.status != STATUS_PENDING:
        return None
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    return ChargeRequest(deposit_id=deposit.id, amount=deposit.amount, currency=account.currency)


async def finish_deposit(session: AsyncSession, *, deposit_id: uuid.UUID, charge: Charge) -> str:
    """Apply the provider's answer once: credit and succeed, or fail; pending stays pending."""
    deposit = await repository.get_for_update(session, deposit_id=deposit_id)
    if deposit is None:
        raise NotFoundError("No such deposit.")
    if deposit.status != STATUS_PENDING or charge.status == "pending":
        return deposit.status
    if charge.status == "declined":
        deposit.status, deposit.failure_code = STATUS_FAILED, charge.failure_code or "declined"
        await session.flush()
        logger.info("deposit_failed", deposit_id=str(deposit.id), reason=deposit.failure_code)
        return deposit.status
    account = await accounts_service.get_account_ref(session, account_id=deposit.account_id)
    assert account is not None  # noqa: S101 - a foreign key guarantees it
    system_id = await accounts_service.system_account_id(session, currency=account.currency)
    posted = await accounts_service.post_transaction(
        session,
        kind="deposit",
        legs=[
            Leg(account_id=system_id, amount=-deposit.amount),
            Leg(account_id=account.id, amount=deposit.amount),
        ],
    )
    if isinstance(posted, Refusal):  # the system account may go negative: only a bug gets here
        raise posted.error
    deposit.status, deposit.ledger_transaction_id = STATUS_SUCCEEDED, posted
    await session.flush()
    # The receipt's task commits with the credit: whoever finished the deposit (the worker or a
    # webhook), the receipt is not forgotten.
    enqueue(session, RECEIPT_TASK, deposit_id=str(deposit.id))
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
    if deposit.status != STATUS_PENDING:
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
