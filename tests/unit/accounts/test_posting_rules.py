"""The posting rules as properties: money is conserved, user balances never go negative."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.accounts.errors import InsufficientFundsError
from app.accounts.schemas import Leg
from app.accounts.service import plan_balances
from app.core.errors import NotFoundError

IDS = [uuid.UUID(int=i) for i in range(1, 5)]
SYSTEM = IDS[0]

balances_strategy = st.tuples(*(st.integers(0, 10**6) for _ in IDS)).map(
    lambda values: {
        account: (value if account != SYSTEM else -value, "system" if account == SYSTEM else "user")
        for account, value in zip(IDS, values, strict=True)
    }
)


@st.composite
def balanced_legs(draw: st.DrawFn) -> list[Leg]:
    """Two or more non-zero legs on known accounts that sum to zero."""
    amounts = draw(st.lists(st.integers(-(10**6), 10**6).filter(bool), min_size=1, max_size=4))
    closing = -sum(amounts)
    if closing == 0:
        amounts, closing = [*amounts[:-1], amounts[-1] + 1], -sum(amounts) - 1 + amounts[-1]
        closing = -sum(amounts)
    if closing == 0:
        amounts = [1]
        closing = -1
    legs = [*amounts, closing]
    accounts = draw(st.lists(st.sampled_from(IDS), min_size=len(legs), max_size=len(legs)))
    return [Leg(account_id=a, amount=x) for a, x in zip(accounts, legs, strict=True)]


@given(balances_strategy, balanced_legs())
def test_a_posting_conserves_money_or_refuses(
    balances: dict[uuid.UUID, tuple[int, str]], legs: list[Leg]
) -> None:
    try:
        new = plan_balances(balances, legs)
    except InsufficientFundsError:
        after = {a: b for a, (b, _) in balances.items()}
        for leg in legs:
            after[leg.account_id] += leg.amount
        assert any(v < 0 and a != SYSTEM for a, v in after.items())
        return
    assert sum(new.values()) == sum(b for b, _ in balances.values())
    assert all(value >= 0 for account, value in new.items() if account != SYSTEM)
    for account in IDS:
        moved = sum(leg.amount for leg in legs if leg.account_id == account)
        assert new[account] == balances[account][0] + moved


@given(balances_strategy, st.integers(1, 10**7))
def test_the_system_account_may_go_negative_but_users_may_not(
    balances: dict[uuid.UUID, tuple[int, str]], amount: int
) -> None:
    credit = [Leg(account_id=IDS[1], amount=amount), Leg(account_id=SYSTEM, amount=-amount)]
    assert plan_balances(balances, credit)[SYSTEM] == balances[SYSTEM][0] - amount
    overdraw = balances[IDS[1]][0] + amount
    debit = [Leg(account_id=IDS[1], amount=-overdraw), Leg(account_id=IDS[2], amount=overdraw)]
    with pytest.raises(InsufficientFundsError):
        plan_balances(balances, debit)


@pytest.mark.parametrize(
    "legs",
    [
        [],
        [Leg(account_id=IDS[1], amount=0), Leg(account_id=IDS[2], amount=0)],
        [Leg(account_id=IDS[1], amount=5)],
        [Leg(account_id=IDS[1], amount=5), Leg(account_id=IDS[2], amount=-4)],
    ],
)
def test_unbalanced_legs_are_a_programming_error(legs: list[Leg]) -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        plan_balances(dict.fromkeys(IDS, (100, "user")), legs)


def test_an_unknown_account_is_not_found() -> None:
    stranger = uuid.uuid4()
    with pytest.raises(NotFoundError):
        plan_balances(
            {IDS[1]: (10, "user")},
            [Leg(account_id=IDS[1], amount=-5), Leg(account_id=stranger, amount=5)],
        )
