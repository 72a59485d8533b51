"""Queries on accounts and ledger rows; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import KIND_SYSTEM, KIND_USER, Account, LedgerEntry, LedgerTransaction
from app.core.pagination import KeysetPosition


async def add_account(session: AsyncSession, account: Account) -> Account:
    """Insert an account and load its server-side defaults (RETURNING: no extra query)."""
    session.add(account)
    await session.flush()
    return account


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """Any account by id."""
    return await session.get(Account, account_id)


async def get_accounts(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> Sequence[Account]:
    """The accounts with these ids (those that exist), in one query."""
    result = await session.execute(select(Account).where(Account.id.in_(account_ids)))
    return result.scalars().all()


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
    query = select(Account).where(Account.user_id == user_id, Account.kind == KIND_USER)
    if after is not None:
        query = query.where(tuple_(Account.created_at, Account.id) < (after.created_at, after.id))
    query = query.order_by(Account.created_at.desc(), Account.id.desc()).limit(limit + 1)
    return (await session.execute(query)).scalars().all()


async def currencies_of(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Account id -> currency for the given ids, in one query."""
    if not account_ids:
        return {}
    result = await session.execute(
        select(Account.id, Account.currency).where(Account.id.in_(account_ids))
    )
    return {row.id: row.currency for row in result.all()}


@dataclass(frozen=True)
class LockedAccount:
    """What a posting needs of an account it has locked."""

    id: uuid.UUID
    kind: str
    currency: str
    balance: int


async def lock_accounts(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> list[LockedAccount]:
    """Lock the accounts FOR UPDATE, in id order.

    Every posting locks in the same order, so two postings can never wait on each other in a
    cycle: no deadlock between postings. Plain rows, not ORM objects: this is the hot path.
    """
    result = await session.execute(
        select(Account.id, Account.kind, Account.currency, Account.balance)
        .where(Account.id.in_(account_ids))
        .order_by(Account.id)
        .with_for_update()
    )
    return [LockedAccount(*row) for row in result.all()]


async def system_account_id(session: AsyncSession, currency: str) -> uuid.UUID:
    """The system account of a currency, created on first use (race-free upsert)."""
    await session.execute(
        insert(Account)
        .values(kind=KIND_SYSTEM, currency=currency, name=f"System {currency}", balance=0)
        .on_conflict_do_nothing(
            # A literal predicate: PostgreSQL matches the partial unique index only by its text.
            index_elements=[Account.currency],
            index_where=text(f"kind = '{KIND_SYSTEM}'"),
        )
    )
    result = await session.execute(
        select(Account.id).where(Account.kind == KIND_SYSTEM, Account.currency == currency)
    )
    return result.scalar_one()


async def add_transaction(
    session: AsyncSession, kind: str, entries: Sequence[tuple[uuid.UUID, int]]
) -> uuid.UUID:
    """Insert a ledger transaction and all its entries: two statements, whatever the count."""
    transaction_id = uuid.uuid4()
    await session.execute(insert(LedgerTransaction).values(id=transaction_id, kind=kind))
    await session.execute(
        insert(LedgerEntry).values(
            [
                {
                    "id": uuid.uuid4(),
                    "transaction_id": transaction_id,
                    "account_id": account_id,
                    "amount": amount,
                }
                for account_id, amount in entries
            ]
        )
    )
    return transaction_id


async def set_balances(session: AsyncSession, balances: Mapping[uuid.UUID, int]) -> None:
    """Write the new balances of locked accounts in one UPDATE (CASE on the id).

    The session's identity map is not synchronised: read balances with a fresh query.
    """
    await session.execute(
        update(Account)
        .where(Account.id.in_(list(balances)))
        .values(balance=case(dict(balances), value=Account.id), updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


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
        select(Account.id, Account.balance).where(Account.kind == KIND_USER, Account.balance < 0)
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
