"""Use cases of accounts and the ledger. Never commits: the request's transaction does.

`post_transaction` is the only way money moves: it locks every account involved in id order,
checks the rules on the locked balances, then writes one ledger transaction, its entries and
the new balances. Payments, adjustments and deposits all go through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.errors import CurrencyMismatchError, InsufficientFundsError
from app.accounts.models import Account, LedgerEntry
from app.accounts.schemas import (
    AccountCreate,
    AccountList,
    AccountRead,
    AccountRef,
    AccountSummary,
    EntryList,
    EntryRead,
    LedgerKind,
    Leg,
    SummaryPeriod,
)
from app.core.cache import Cache, Entry, mark_stale
from app.core.errors import AppError, NotFoundError, Refusal
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


async def get_summary(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    account_id: uuid.UUID,
    period: SummaryPeriod,
    cache: Cache,
) -> AccountSummary:
    """Credits, debits and count over a period.

    An aggregate over entries, cached per period until the next posting on the account.
    """
    account = await get_account(session, user_id=user_id, account_id=account_id, cache=cache)

    async def load() -> dict[str, Any]:
        credits, debits, count = await repository.summarize(
            session, account_id, start=period.start, end=period.end
        )
        return {"credits": credits, "debits": debits, "count": count}

    name = f"summary:{_instant(period.start)}:{_instant(period.end)}"
    totals = await cache.get_or_load(cache_scope(account_id), name, load) or {}
    return AccountSummary(
        account_id=account.id,
        currency=account.currency,
        start=period.start,
        end=period.end,
        credits=totals["credits"],
        debits=totals["debits"],
        net=totals["credits"] - totals["debits"],
        count=totals["count"],
    )


def _instant(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment is not None else "-"


async def list_entries(
    session: AsyncSession, *, user_id: uuid.UUID, account_id: uuid.UUID, page: PageParams
) -> EntryList:
    """The account's statement, newest first (one query per page, whatever its size)."""
    if await repository.get_user_account(session, user_id, account_id) is None:
        raise NotFoundError("No such account.")
    rows = await repository.list_entries(session, account_id, after=page.after, limit=page.limit)
    return build_page(
        EntryList,
        rows,
        limit=page.limit,
        to_item=lambda row: _entry_read(*row),
        position=lambda row: KeysetPosition(created_at=row[0].created_at, id=row[0].id),
    )


def _entry_read(entry: LedgerEntry, kind: str) -> EntryRead:
    return EntryRead(
        id=entry.id,
        transaction_id=entry.transaction_id,
        kind=LedgerKind(kind),
        amount=entry.amount,
        created_at=entry.created_at,
    )


async def get_account_ref(session: AsyncSession, *, account_id: uuid.UUID) -> AccountRef | None:
    """Owner, kind and currency of any account, for other modules' checks; None if unknown."""
    return (await get_account_refs(session, account_ids=[account_id])).get(account_id)


async def get_account_refs(
    session: AsyncSession, *, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AccountRef]:
    """Owner, kind and currency of each existing account among `account_ids`, in one query."""
    return {ref.id: ref for ref in await repository.get_account_refs(session, account_ids)}


async def currencies_of(
    session: AsyncSession, *, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The currency of each account, in one query."""
    refs = await get_account_refs(session, account_ids=account_ids) if account_ids else {}
    return {account_id: ref.currency for account_id, ref in refs.items()}


async def system_account_id(session: AsyncSession, *, currency: str) -> uuid.UUID:
    """The per-currency system account ("the outside world"), created on first use."""
    return await repository.system_account_id(session, currency)


def check_legs(legs: Sequence[Leg]) -> None:
    """The shape of a posting, pure: two or more non-zero legs that sum to zero.

    Anything else is a programming error, not a client's: it must never reach the database
    (where `ledger_post` refuses it too) and answers 500.
    """
    if len(legs) < 2 or any(leg.amount == 0 for leg in legs) or sum(x.amount for x in legs) != 0:
        raise ValueError("a posting needs two or more non-zero legs that sum to zero")


# The refusal codes of the database's `ledger_post` and the errors they are answered with.
_REFUSALS: dict[str, Callable[[], AppError]] = {
    "not_found": lambda: NotFoundError("No such account."),
    "currency_mismatch": CurrencyMismatchError,
    "insufficient_funds": InsufficientFundsError,
}


async def post_transaction(
    session: AsyncSession, *, kind: LedgerKind, legs: Sequence[Leg]
) -> uuid.UUID | Refusal:
    """Move money: one balanced ledger transaction, atomically. Its id, or why it was refused.

    One call of the database's `ledger_post` (ADR 0021): it locks every account in id order,
    refuses an unknown account, mixed currencies or a user balance below zero, and otherwise
    writes the transaction, its entries and the new balances. A refusal is a value: nothing
    was written, but the accounts stay locked for the caller, who may record the refused
    attempt (releasing them first would let the caller's next write queue for them out of id
    order: a deadlock the bank-run test found).
    """
    check_legs(legs)
    posted = await repository.post(session, kind, [(leg.account_id, leg.amount) for leg in legs])
    if isinstance(posted, str):
        return Refusal(_REFUSALS[posted]())
    mark_stale(session, *{cache_scope(leg.account_id) for leg in legs})
    return posted


async def verify_ledger(session: AsyncSession) -> list[str]:
    """Check every ledger invariant; return one line per breach (empty when all hold)."""
    breaches = [
        f"transaction {tx} is unbalanced: {count} entries summing to {total}"
        for tx, total, count in await repository.unbalanced_transactions(session)
    ]
    breaches += [
        f"transaction {tx} mixes currencies"
        for tx in await repository.mixed_currency_transactions(session)
    ]
    breaches += [
        f"account {account} has balance {balance} but its entries sum to {total}"
        for account, balance, total in await repository.drifted_balances(session)
    ]
    breaches += [
        f"user account {account} is negative: {balance}"
        for account, balance in await repository.negative_user_accounts(session)
    ]
    return breaches
