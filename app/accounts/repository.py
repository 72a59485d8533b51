"""Queries on accounts; no business rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import (
    ARRAY,
    ColumnExpressionArgument,
    ScalarSelect,
    Uuid,
    bindparam,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
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


def currency_of(account_id: ColumnExpressionArgument[uuid.UUID]) -> ScalarSelect[str]:
    """The currency of the account `account_id` names, as a correlated subquery (SQL)."""
    return select(Account.currency).where(Account.id == account_id).scalar_subquery()


async def get_account_refs(
    session: AsyncSession, account_ids: Sequence[uuid.UUID]
) -> list[AccountRef]:
    """Owner, kind and currency of the accounts with these ids (those that exist), one query."""
    result = await session.execute(_REFS, {"account_ids": list(account_ids)})
    return [AccountRef.model_validate(row) for row in result.all()]


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
