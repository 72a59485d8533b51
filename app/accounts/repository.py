"""Queries on accounts and ledger rows; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, Uuid, bindparam, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, LedgerEntry, LedgerTransaction
from app.accounts.schemas import AccountKind, AccountRef
from app.core.pagination import KeysetPosition


async def add_account(session: AsyncSession, account: Account) -> Account:
    """Insert an account and load its server-side defaults (RETURNING: no extra query)."""
    session.add(account)
    await session.flush()
    return account


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """Any account by id."""
    return await session.get(Account, account_id)


# Built once: this look-up runs before every posting.
_REFS = select(Account.id, Account.user_id, Account.kind, Account.currency).where(
    Account.id == func.any(bindparam("account_ids", type_=ARRAY(Uuid())))
)


async def get_account_refs(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> list[AccountRef]:
    """Owner, kind and currency of the accounts with these ids (those that exist), one query."""
    result = await session.execute(_REFS, {"account_ids": list(account_ids)})
    return [AccountRef.model_validate(row) for row in result.all()]


async def get_user_account(
    session: AsyncSession, user_id: uuid.UUID, account_id: uuid.UUID
) -> Account | None:
    """The account if it belongs to this user (otherwise None: never confirm it exists)."""
    result = await session.execute(
        select(Account).where(Account.id == account_id, Account.user_id == user_id)
    )
    return result.scalar_one_or_none()


async def list_user_accounts(
    session: AsyncSession, user_id: uuid.UUID, *, after: KeysetPosition | None, limit: int
) -> Sequence[Account]:
    """A user's accounts, newest first, `limit + 1` rows (keyset on created_at, id)."""
    query = select(Account).where(Account.user_id == user_id, Account.kind == AccountKind.USER)
    if after is not None:
        query = query.where(tuple_(Account.created_at, Account.id) < (after.created_at, after.id))
    query = query.order_by(Account.created_at.desc(), Account.id.desc()).limit(limit + 1)
    return (await session.execute(query)).scalars().all()


async def system_account_id(session: AsyncSession, currency: str) -> uuid.UUID:
    """The system account of a currency, created on first use (race-free upsert)."""
    await session.execute(
        insert(Account)
        .values(kind=AccountKind.SYSTEM, currency=currency, name=f"System {currency}", balance=0)
        .on_conflict_do_nothing(
            # A literal predicate: PostgreSQL matches the partial unique index only by its text.
            index_elements=[Account.currency],
            index_where=text(f"kind = '{AccountKind.SYSTEM}'"),
        )
    )
    result = await session.execute(
        select(Account.id).where(Account.kind == AccountKind.SYSTEM, Account.currency == currency)
    )
    return result.scalar_one()


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
        .join(Account, Account.id == LedgerEntry.account_id)
        .group_by(LedgerEntry.transaction_id)
        .having(func.count(func.distinct(Account.currency)) > 1)
    )
    return list(result.scalars().all())


async def drifted_balances(session: AsyncSession) -> list[tuple[uuid.UUID, int, int]]:
    """Accounts whose balance differs from the sum of their entries."""
    total = func.coalesce(func.sum(LedgerEntry.amount), 0)
    result = await session.execute(
        select(Account.id, Account.balance, total)
        .outerjoin(LedgerEntry, LedgerEntry.account_id == Account.id)
        .group_by(Account.id)
        .having(Account.balance != total)
    )
    return [(row[0], int(row[1]), int(row[2])) for row in result.all()]


async def negative_user_accounts(session: AsyncSession) -> list[tuple[uuid.UUID, int]]:
    """User accounts below zero (the CHECK constraint should make this impossible)."""
    result = await session.execute(
        select(Account.id, Account.balance).where(
            Account.kind == AccountKind.USER, Account.balance < 0
        )
    )
    return [(row[0], int(row[1])) for row in result.all()]


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
