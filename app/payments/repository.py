"""Queries on payments; no business rules."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, bindparam, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.core.pagination import KeysetPosition
from app.payments.models import Payment
from app.payments.schemas import PaymentFilters

# One call of the migration's PL/pgSQL function: the payment's checks on its accounts,
# `ledger_post` and the payment's row, in one round trip. Built once: the hot path pays for no
# statement construction and no ORM unit of work.
_CREATE = text(
    "SELECT invalid, refusal, ledger_transaction_id, created_at"
    " FROM payment_create(:id, :owner_id, :source_account_id, :destination_account_id,"
    " :amount, :currency, :description)"
)
# What a payment is read as: plain rows of these columns, not ORM instances (a page of 21 rows
# spent more CPU building instances and their identity map than running its query).
# The currency is the accounts' (a payment does not store it): read in the same statement.
_READ = (
    Payment.id,
    Payment.status,
    Payment.amount,
    accounts_service.currency_of(Payment.source_account_id).label("currency"),
    Payment.source_account_id,
    Payment.destination_account_id,
    Payment.description,
    Payment.failure_code,
    Payment.created_at,
)
PaymentRow = Row[uuid.UUID, str, int, str, uuid.UUID, uuid.UUID, str, str | None, datetime]


@dataclass(frozen=True)
class Recorded:
    """A payment `payment_create` recorded: posted, or refused and recorded as failed."""

    posted: uuid.UUID | str  # the ledger transaction's id, or the refusal code of ledger_post
    created_at: datetime


async def create(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    owner_id: uuid.UUID,
    source_account_id: uuid.UUID,
    destination_account_id: uuid.UUID,
    amount: int,
    currency: str,
    description: str,
) -> Recorded | str:
    """Check the accounts, post and record the payment, in one statement.

    A string is the code of a request it would not run (an unknown or someone else's source, a
    destination that is no user's account, another currency): nothing was written.
    """
    row = (
        await session.execute(
            _CREATE,
            {
                "id": payment_id,
                "owner_id": owner_id,
                "source_account_id": source_account_id,
                "destination_account_id": destination_account_id,
                "amount": amount,
                "currency": currency,
                "description": description,
            },
        )
    ).one()
    if row.invalid is not None:
        invalid: str = row.invalid
        return invalid
    return Recorded(posted=row.refusal or row.ledger_transaction_id, created_at=row.created_at)


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentRow | None:
    """The payment, if this user made it."""
    result = await session.execute(
        select(*_READ).where(Payment.id == payment_id, Payment.owner_id == owner_id)
    )
    return result.one_or_none()


@functools.cache
def _list_query(
    *, status: bool, account: bool, created_after: bool, created_before: bool, keyset: bool
) -> Select[uuid.UUID, str, int, str, uuid.UUID, uuid.UUID, str, str | None, datetime]:
    """The list query for one combination of filters, built once (32 shapes at most).

    Building a statement is a good part of a list request's CPU; its values are bound at
    execution instead, so each shape is constructed (and compiled) once per process.
    """
    query = select(*_READ).where(Payment.owner_id == bindparam("owner_id"))
    if status:
        query = query.where(Payment.status == bindparam("status"))
    if account:
        query = query.where(
            or_(
                Payment.source_account_id == bindparam("account_id"),
                Payment.destination_account_id == bindparam("account_id"),
            )
        )
    if created_after:
        query = query.where(Payment.created_at >= bindparam("created_after"))
    if created_before:
        query = query.where(Payment.created_at < bindparam("created_before"))
    if keyset:
        query = query.where(
            tuple_(Payment.created_at, Payment.id)
            < tuple_(bindparam("after_created_at"), bindparam("after_id"))
        )
    return query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(bindparam("rows"))


async def list_owned(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    filters: PaymentFilters,
    after: KeysetPosition | None,
    limit: int,
) -> Sequence[PaymentRow]:
    """A user's payments, newest first, `limit + 1` rows, filtered; one query."""
    query = _list_query(
        status=filters.status is not None,
        account=filters.account_id is not None,
        created_after=filters.created_after is not None,
        created_before=filters.created_before is not None,
        keyset=after is not None,
    )
    values: dict[str, object] = {
        "owner_id": owner_id,
        "status": filters.status,
        "account_id": filters.account_id,
        "created_after": filters.created_after,
        "created_before": filters.created_before,
        "rows": limit + 1,
    }
    if after is not None:
        values.update(after_created_at=after.created_at, after_id=after.id)
    return (await session.execute(query, values)).all()
