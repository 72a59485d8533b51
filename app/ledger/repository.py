"""Queries on ledger rows; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    String,
    Uuid,
    bindparam,
    column,
    func,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.schemas import AccountKind
from app.core.pagination import KeysetPosition
from app.ledger.models import LedgerEntry, LedgerTransaction

# The columns of `accounts` the ledger keeps (`ledger_post` writes the balance) and checks.
# Named, not imported: modules meet through services, and the ledger never loads an Account.
_accounts = table(
    "accounts",
    column("id", Uuid()),
    column("kind", String()),
    column("currency", String()),
    column("balance", BigInteger()),
)

# One call of the migration's PL/pgSQL function (ADR 0021): it locks the accounts in id order,
# checks them and writes the transaction, its entries and the balances. Built once: the hot path
# pays for no statement construction.
_POST = text(
    "SELECT transaction_id, refusal FROM ledger_post(:kind, :account_ids, :amounts)"
).bindparams(
    bindparam("account_ids", type_=ARRAY(Uuid())),
    bindparam("amounts", type_=ARRAY(BigInteger())),
)


async def post(
    session: AsyncSession, kind: str, legs: Sequence[tuple[uuid.UUID, int]]
) -> uuid.UUID | str:
    """Post one balanced transaction: its id, or the code of the refusal.

    A refusal writes nothing and keeps the row locks for the rest of the transaction.
    """
    row = (
        await session.execute(
            _POST,
            {
                "kind": kind,
                "account_ids": [account_id for account_id, _ in legs],
                "amounts": [amount for _, amount in legs],
            },
        )
    ).one()
    refusal: str | None = row.refusal
    if refusal is not None:
        return refusal
    transaction_id: uuid.UUID = row.transaction_id
    return transaction_id


async def list_entries(
    session: AsyncSession, account_id: uuid.UUID, *, after: KeysetPosition | None, limit: int
) -> list[tuple[LedgerEntry, str]]:
    """An account's entries with their transaction kind, newest first, `limit + 1` rows."""
    query = (
        select(LedgerEntry, LedgerTransaction.kind)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
    )
    if after is not None:
        query = query.where(
            tuple_(LedgerEntry.created_at, LedgerEntry.id) < (after.created_at, after.id)
        )
    query = query.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit + 1)
    return [(entry, kind) for entry, kind in (await session.execute(query)).all()]


async def summarize(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    start: datetime | None,
    end: datetime | None,
) -> tuple[int, int, int]:
    """(credits, debits, count) of an account's entries in [start, end).

    One aggregate query, on ix_ledger_entries_account_id_created_at_id.
    """
    credits = func.coalesce(func.sum(LedgerEntry.amount).filter(LedgerEntry.amount > 0), 0)
    debits = func.coalesce(-func.sum(LedgerEntry.amount).filter(LedgerEntry.amount < 0), 0)
    query = select(credits, debits, func.count()).where(LedgerEntry.account_id == account_id)
    if start is not None:
        query = query.where(LedgerEntry.created_at >= start)
    if end is not None:
        query = query.where(LedgerEntry.created_at < end)
    row = (await session.execute(query)).one()
    return int(row[0]), int(row[1]), int(row[2])


async def unbalanced_transactions(session: AsyncSession) -> list[tuple[uuid.UUID, int, int]]:
    """Transactions whose entries do not sum to zero, or number fewer than two."""
    total = func.coalesce(func.sum(LedgerEntry.amount), 0)
    count = func.count(LedgerEntry.id)
    result = await session.execute(
        select(LedgerTransaction.id, total, count)
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.id)
        .having(or_(total != 0, count < 2))
    )
    return [(row[0], int(row[1]), int(row[2])) for row in result.all()]


async def mixed_currency_transactions(session: AsyncSession) -> list[uuid.UUID]:
    """Transactions whose entries touch accounts of more than one currency."""
    result = await session.execute(
        select(LedgerEntry.transaction_id)
        .join(_accounts, _accounts.c.id == LedgerEntry.account_id)
        .group_by(LedgerEntry.transaction_id)
        .having(func.count(func.distinct(_accounts.c.currency)) > 1)
    )
    return list(result.scalars().all())


async def drifted_balances(session: AsyncSession) -> list[tuple[uuid.UUID, int, int]]:
    """Accounts whose balance differs from the sum of their entries."""
    total = func.coalesce(func.sum(LedgerEntry.amount), 0)
    result = await session.execute(
        select(_accounts.c.id, _accounts.c.balance, total)
        .outerjoin(LedgerEntry, LedgerEntry.account_id == _accounts.c.id)
        .group_by(_accounts.c.id)
        .having(_accounts.c.balance != total)
    )
    return [(row[0], int(row[1]), int(row[2])) for row in result.all()]


async def negative_user_accounts(session: AsyncSession) -> list[tuple[uuid.UUID, int]]:
    """User accounts below zero (the CHECK constraint should make this impossible)."""
    result = await session.execute(
        select(_accounts.c.id, _accounts.c.balance).where(
            _accounts.c.kind == AccountKind.USER, _accounts.c.balance < 0
        )
    )
    return [(row[0], int(row[1])) for row in result.all()]
