"""Use cases of payments. Never commits: the request's transaction does.

The payment list's first pages are cached per owner (ADR 0035): a list's answer depends on the
owner's payment rows alone, and those only change when the owner makes a payment
(`payment_create` inserts; nothing updates or deletes a payment). Each payment, refused or not,
moves the owner's list scope on at its commit, so a list read right after a payment shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cache import Cache, Entry, mark_stale
from app.core.errors import AppError, NotFoundError, Refusal
from app.core.logging import get_logger
from app.core.metrics import PAYMENTS, count_after_commit
from app.core.pagination import KeysetPosition, PageParams, build_page
from app.ledger import service as ledger_service
from app.ledger.errors import CurrencyMismatchError
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
_UNFILTERED = PaymentFilters()

# The codes of a request `payment_create` would not run (nothing written), as answered.
_INVALID: dict[str, Callable[[], AppError]] = {
    "source_not_found": lambda: NotFoundError("No such source account."),
    "destination_not_found": lambda: NotFoundError("No such destination account."),
    "currency_mismatch": CurrencyMismatchError,
}


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
    # The account checks, the posting and the payment's row: one call of the database's
    # `payment_create`, one round trip.
    payment_id = uuid.uuid4()
    recorded = await repository.create(
        session,
        payment_id=payment_id,
        owner_id=owner_id,
        source_account_id=data.source_account_id,
        destination_account_id=data.destination_account_id,
        amount=data.amount,
        currency=data.currency,
        description=data.description,
    )
    if isinstance(recorded, str):
        raise _INVALID[recorded]()
    # Posted or refused, the payment's row is in the owner's list from this commit on.
    mark_stale(session, list_scope(owner_id))
    posted = ledger_service.posting_outcome(
        session,
        recorded.posted,
        account_ids=[data.source_account_id, data.destination_account_id],
    )
    # A refused attempt is a business outcome: its record is kept, the answer is 409.
    failure_code = posted.error.code if isinstance(posted, Refusal) else None
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
        source_account_id=data.source_account_id,
        destination_account_id=data.destination_account_id,
        description=data.description,
        failure_code=None,
        created_at=recorded.created_at,
    )


async def get_payment(
    session: AsyncSession, *, owner_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentRead:
    """One of the user's payments; NotFoundError for anyone else's."""
    payment = await repository.get_owned(session, owner_id, payment_id)
    if payment is None:
        raise NotFoundError("No such payment.")
    return _read(payment)


def list_scope(owner_id: uuid.UUID) -> str:
    """The cache scope of one owner's payment list."""
    return f"payments:{owner_id}"


def first_page_entry(owner_id: uuid.UUID, *, limit: int) -> Entry:
    """The cache entry of an owner's first page of `limit` payments, with no filter.

    `payments.dependencies.prefetch_payment_list` names it before the request is validated, so
    that it comes with the rate-limit verdict (ADR 0022).
    """
    return list_scope(owner_id), f"first?limit={limit}"


async def list_payments(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    filters: PaymentFilters,
    page: PageParams,
    cache: Cache,
) -> PaymentList:
    """The user's payments, newest first: one query per page, none for a cached first page."""

    async def read() -> PaymentList:
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

    if page.after is not None or filters != _UNFILTERED:
        # Only the plain first pages are cached: at most one entry per page size and owner,
        # where every filter value and cursor would be an entry of its own (ADR 0035).
        return await read()

    async def load() -> dict[str, Any]:
        return (await read()).model_dump(mode="json")

    entry = first_page_entry(owner_id, limit=page.limit)
    return PaymentList.model_validate(await cache.get_or_load(*entry, load))


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
