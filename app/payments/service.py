"""Use cases of payments. Never commits: the request's transaction does."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.accounts.schemas import AccountKind
from app.core.errors import NotFoundError, Refusal
from app.core.logging import get_logger
from app.core.metrics import PAYMENTS, count_after_commit
from app.core.pagination import KeysetPosition, PageParams, build_page
from app.ledger import service as ledger_service
from app.ledger.errors import CurrencyMismatchError
from app.ledger.schemas import LedgerKind, Leg
from app.payments import repository
from app.payments.errors import SameAccountError
from app.payments.repository import PaymentRow
from app.payments.schemas import (
    PaymentCreate,
    PaymentFilters,
    PaymentList,
    PaymentRead,
    PaymentStatus,
)

logger = get_logger(__name__)


async def create_payment(
    session: AsyncSession, *, owner_id: uuid.UUID, data: PaymentCreate
) -> PaymentRead | Refusal:
    """Transfer between two accounts of one currency, atomically.

    Writes the payment row, the ledger transaction, two entries and both balances. Refused
    for insufficient funds: records a failed payment and returns the refusal (answered 409).
    Invalid requests (unknown account, other currency, same account) raise: nothing is written.
    """
    if data.source_account_id == data.destination_account_id:
        raise SameAccountError
    refs = await accounts_service.get_account_refs(
        session, account_ids=[data.source_account_id, data.destination_account_id]
    )
    source, destination = refs.get(data.source_account_id), refs.get(data.destination_account_id)
    if source is None or source.user_id != owner_id:
        raise NotFoundError("No such source account.")
    if destination is None or destination.kind != AccountKind.USER:
        raise NotFoundError("No such destination account.")
    if not data.currency == source.currency == destination.currency:
        raise CurrencyMismatchError

    posted = await ledger_service.post_transaction(
        session,
        kind=LedgerKind.PAYMENT,
        legs=[
            Leg(account_id=source.id, amount=-data.amount),
            Leg(account_id=destination.id, amount=data.amount),
        ],
    )
    # A refused attempt is a business outcome: its record is kept, the answer is 409.
    if isinstance(posted, Refusal):
        status, failure_code, transaction_id = PaymentStatus.FAILED, posted.error.code, None
    else:
        status, failure_code, transaction_id = PaymentStatus.SUCCEEDED, None, posted
    payment_id, created_at = await repository.insert_payment(
        session,
        owner_id=owner_id,
        source_account_id=source.id,
        destination_account_id=destination.id,
        amount=data.amount,
        description=data.description,
        status=status,
        failure_code=failure_code,
        ledger_transaction_id=transaction_id,
    )
    count_after_commit(session, PAYMENTS.labels(outcome=failure_code or PaymentStatus.SUCCEEDED))
    if isinstance(posted, Refusal):
        logger.info("payment_failed", payment_id=str(payment_id), reason=failure_code)
        return posted
    logger.info("payment_succeeded", payment_id=str(payment_id), amount=data.amount)
    return PaymentRead(
        id=payment_id,
        status=PaymentStatus.SUCCEEDED,
        amount=data.amount,
        currency=data.currency,
        source_account_id=source.id,
        destination_account_id=destination.id,
        description=data.description,
        failure_code=None,
        created_at=created_at,
    )


async def get_payment(
    session: AsyncSession, *, owner_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentRead:
    """One of the user's payments; NotFoundError for anyone else's."""
    payment = await repository.get_owned(session, owner_id, payment_id)
    if payment is None:
        raise NotFoundError("No such payment.")
    return _read(payment)


async def list_payments(
    session: AsyncSession, *, owner_id: uuid.UUID, filters: PaymentFilters, page: PageParams
) -> PaymentList:
    """The user's payments, newest first: one query per page, whatever its size."""
    rows = await repository.list_owned(
        session, owner_id, filters=filters, after=page.after, limit=page.limit
    )
    return build_page(
        PaymentList,
        rows,
        limit=page.limit,
        to_item=_read,
        position=lambda p: KeysetPosition(created_at=p.created_at, id=p.id),
    )


def _read(payment: PaymentRow) -> PaymentRead:
    return PaymentRead(
        id=payment.id,
        status=PaymentStatus(payment.status),
        amount=payment.amount,
        currency=payment.currency,
        source_account_id=payment.source_account_id,
        destination_account_id=payment.destination_account_id,
        description=payment.description,
        failure_code=payment.failure_code,
        created_at=payment.created_at,
    )
