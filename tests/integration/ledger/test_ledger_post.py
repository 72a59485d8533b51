"""The database's posting function against a model of the rules, on many random postings.

`ledger_post` (ADR 0021) is where the rules run: every account known, one currency, no user
account below zero, the system account free to go negative; money conserved. Each case sets
the balances, posts random legs and compares what the database did with what the model says,
inside a savepoint that is rolled back. The generator is seeded: a failure replays.
"""

from __future__ import annotations

import random
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.core.errors import Refusal
from app.ledger import service as ledger_service
from app.ledger.schemas import LedgerKind, Leg
from tests.factories import open_account, signed_in_user

CASES = 200


def model(
    balances: dict[uuid.UUID, int],
    kinds: dict[uuid.UUID, str],
    currencies: dict[uuid.UUID, str],
    legs: list[Leg],
) -> dict[uuid.UUID, int] | str:
    """What a posting must do: the new balances, or the code of its refusal."""
    touched = {leg.account_id for leg in legs}
    if not touched <= balances.keys():
        return "not_found"
    if len({currencies[account] for account in touched}) > 1:
        return "currency_mismatch"
    new = dict(balances)
    for leg in legs:
        new[leg.account_id] += leg.amount
    if any(new[account] < 0 and kinds[account] == "user" for account in touched):
        return "insufficient_funds"
    return new


def random_legs(rng: random.Random, accounts: list[uuid.UUID]) -> list[Leg]:
    """Two to four non-zero legs that sum to zero, on random (possibly repeated) accounts."""
    while True:  # drawn again when the random legs already balance: no closing leg of 0
        amounts = [rng.choice([-1, 1]) * rng.randint(1, 1_000) for _ in range(rng.randint(1, 3))]
        closing = -sum(amounts)
        if closing != 0:
            return [Leg(account_id=rng.choice(accounts), amount=x) for x in [*amounts, closing]]


async def test_ledger_post_matches_the_model(client: AsyncClient, session: AsyncSession) -> None:
    user = await signed_in_user(client)
    euros = [uuid.UUID(str((await open_account(client, user, name=f"e{i}"))["id"])) for i in (1, 2)]
    dollars = uuid.UUID(str((await open_account(client, user, currency="USD"))["id"]))
    system = await accounts_service.system_account_id(session, currency="EUR")
    unknown = uuid.uuid4()
    known = [*euros, dollars, system]
    kinds = {**dict.fromkeys([*euros, dollars], "user"), system: "system"}
    currencies = {**dict.fromkeys([*euros, system], "EUR"), dollars: "USD"}

    async def entry_count() -> int:
        query = text("SELECT count(*) FROM ledger_entries WHERE account_id = ANY(:ids)")
        return int(await session.scalar(query, {"ids": known}) or 0)

    rng = random.Random(20261202)
    outcomes: dict[str, int] = {}
    for case in range(CASES):
        balances = {account: rng.randint(0, 1_500) for account in known}
        balances[system] = -rng.randint(0, 10_000)
        # Unknown and other-currency accounts only now and then, so most cases post or overdraw.
        pool = [*euros, system] + [dollars] * (case % 7 == 0) + [unknown] * (case % 11 == 0)
        legs = random_legs(rng, pool)
        if len(legs) < 2:
            continue
        expected = model(balances, kinds, currencies, legs)
        async with session.begin_nested() as savepoint:
            for account, balance in balances.items():
                await session.execute(
                    text("UPDATE accounts SET balance = :b WHERE id = :id"),
                    {"b": balance, "id": account},
                )
            # The shared system account has other tests' entries: count this case's only.
            entries_before = await entry_count()
            posted = await ledger_service.post_transaction(
                session, kind=LedgerKind.PAYMENT, legs=legs
            )
            rows = await session.execute(
                text("SELECT id, balance FROM accounts WHERE id = ANY(:ids)"), {"ids": known}
            )
            after = {row.id: row.balance for row in rows}
            entries = await entry_count() - entries_before
            context = f"case {case}: {balances} {legs}"
            if isinstance(expected, str):
                assert isinstance(posted, Refusal), context
                assert posted.error.code == expected, context
                assert after == balances, context  # nothing written
                assert entries == 0, context
            else:
                assert not isinstance(posted, Refusal), context
                assert after == expected, context
                assert sum(after.values()) == sum(balances.values()), context
                assert entries == len(legs), context
            outcomes[expected if isinstance(expected, str) else "posted"] = (
                outcomes.get(expected if isinstance(expected, str) else "posted", 0) + 1
            )
            await savepoint.rollback()
    # The generator reached every outcome, or the test would prove less than it says.
    assert outcomes.keys() == {"posted", "insufficient_funds", "currency_mismatch", "not_found"}


async def test_malformed_legs_are_refused_by_the_database_too(session: AsyncSession) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    for account_ids, amounts in [([a, b], [5, -4]), ([a], [0]), ([a, b], [0, 0]), ([a, b], [1])]:
        with pytest.raises(DBAPIError, match="sum to zero"):
            async with session.begin_nested():
                await session.execute(
                    text("SELECT * FROM ledger_post('payment', :ids, :amounts)"),
                    {"ids": account_ids, "amounts": amounts},
                )
