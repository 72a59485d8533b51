"""Use cases of the ledger. Never commits: the request's transaction does.

The database's `ledger_post` is the only way money moves: it locks every account involved in
id order, checks the rules on the locked balances, then writes one ledger transaction, its
entries and the new balances. Adjustments and deposits call it through `post_transaction`; a
payment's `payment_create` calls it inside the database, and `posting_outcome` gives its answer
the same meaning. An account's statement and summary are read here too; whose account it is, and
its cache scope, are the accounts module's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.core.cache import Cache, mark_stale
from app.core.errors import AppError, NotFoundError, Refusal
from app.core.pagination import KeysetPosition, PageParams, build_page
from app.ledger import repository
from app.ledger.errors import CurrencyMismatchError, InsufficientFundsError
from app.ledger.models import LedgerEntry
from app.ledger.schemas import (
    AccountSummary,
    EntryList,
    EntryRead,
    LedgerKind,
    Leg,
    SummaryPeriod,
)


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
    return posting_outcome(session, posted, account_ids=[leg.account_id for leg in legs])


def posting_outcome(
    session: AsyncSession, posted: uuid.UUID | str, *, account_ids: Sequence[uuid.UUID]
) -> uuid.UUID | Refusal:
    """What a call of `ledger_post` answered, as `post_transaction` returns it.

    `posted` is the call's answer: its transaction's id, or a refusal code. A refusal becomes
    its error; after a posting, the accounts' cached values are marked stale (bumped once the
    transaction commits). For a database function of another module that calls `ledger_post`
    itself, so that its outcome means what a posting made here means (`payment_create`).
    """
    if isinstance(posted, str):
        return Refusal(_REFUSALS[posted]())
    mark_stale(session, *{accounts_service.cache_scope(account_id) for account_id in account_ids})
    return posted


async def get_summary(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    account_id: uuid.UUID,
    period: SummaryPeriod,
    cache: Cache,
) -> AccountSummary:
    """Credits, debits and count over a period of one of the user's accounts.

    An aggregate over entries, cached in the account's scope: fresh after its next posting.
    """
    account = await accounts_service.get_account(
        session, user_id=user_id, account_id=account_id, cache=cache
    )

    async def load() -> dict[str, Any]:
        credits, debits, count = await repository.summarize(
            session, account_id, start=period.start, end=period.end
        )
        return {"credits": credits, "debits": debits, "count": count}

    name = f"summary:{_instant(period.start)}:{_instant(period.end)}"
    totals = await cache.get_or_load(accounts_service.cache_scope(account_id), name, load) or {}
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
    """One of the user's accounts' statement, newest first (one query per page, any size)."""
    ref = await accounts_service.get_account_ref(session, account_id=account_id)
    if ref is None or ref.user_id != user_id:  # anyone else's: never confirm it exists
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
