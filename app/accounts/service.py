"""Use cases of accounts. Never commits: the request's transaction does.

An account's balance moves only through the ledger (`app/ledger/service.py`), which asks this
module whose an account is and which cache scope its reads live in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnExpressionArgument, ScalarSelect
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.models import Account
from app.accounts.schemas import AccountCreate, AccountList, AccountRead, AccountRef
from app.core.cache import Cache, Entry
from app.core.errors import NotFoundError
from app.core.logging import get_logger
from app.core.pagination import KeysetPosition, PageParams, build_page

logger = get_logger(__name__)


async def open_account(
    session: AsyncSession, *, user_id: uuid.UUID, data: AccountCreate
) -> AccountRead:
    """Open an account with a zero balance."""
    account = await repository.add_account(
        session, Account(user_id=user_id, currency=data.currency, name=data.name)
    )
    return AccountRead.model_validate(account)


async def list_accounts(
    session: AsyncSession, *, user_id: uuid.UUID, page: PageParams
) -> AccountList:
    """The user's accounts, newest first."""
    rows = await repository.list_user_accounts(session, user_id, after=page.after, limit=page.limit)
    return build_page(
        AccountList,
        rows,
        limit=page.limit,
        to_item=AccountRead.model_validate,
        position=lambda a: KeysetPosition(created_at=a.created_at, id=a.id),
    )


def cache_scope(account_id: uuid.UUID) -> str:
    """The cache scope of everything derived from one account's rows."""
    return f"account:{account_id}"


def account_read_entry(account_id: uuid.UUID) -> Entry:
    """The cache entry `get_account` reads, for a caller that has it read ahead (ADR 0022)."""
    return cache_scope(account_id), "read"


async def get_account(
    session: AsyncSession, *, user_id: uuid.UUID, account_id: uuid.UUID, cache: Cache
) -> AccountRead:
    """One of the user's accounts (cached); NotFoundError for anyone else's (never 403)."""

    async def load() -> dict[str, Any] | None:
        account = await repository.get_account(session, account_id)
        if account is None or account.user_id is None:
            return None
        return {
            "owner": str(account.user_id),
            "account": AccountRead.model_validate(account).model_dump(mode="json"),
        }

    cached = await cache.get_or_load(*account_read_entry(account_id), load)
    if cached is None or cached["owner"] != str(user_id):
        raise NotFoundError("No such account.")
    return AccountRead.model_validate(cached["account"])


async def get_account_ref(session: AsyncSession, *, account_id: uuid.UUID) -> AccountRef | None:
    """Owner, kind and currency of any account, for other modules' checks; None if unknown."""
    return (await get_account_refs(session, account_ids=[account_id])).get(account_id)


def currency_of(account_id: ColumnExpressionArgument[uuid.UUID]) -> ScalarSelect[str]:
    """The currency of the account a column of another module's query names, as SQL.

    For a module that shows accounts' currencies beside its own rows (a payment's is its
    accounts'): one statement instead of its query and then `get_account_refs`.
    """
    return repository.currency_of(account_id)


async def get_account_refs(
    session: AsyncSession, *, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AccountRef]:
    """Owner, kind and currency of each existing account among `account_ids`, in one query.

    The one look-up of accounts for other modules (`get_account_ref` asks it for one).
    """
    if not account_ids:  # an empty page: nothing to ask the database
        return {}
    return {ref.id: ref for ref in await repository.get_account_refs(session, account_ids)}


async def system_account_id(session: AsyncSession, *, currency: str) -> uuid.UUID:
    """The per-currency system account ("the outside world"), created on first use."""
    return await repository.system_account_id(session, currency)
