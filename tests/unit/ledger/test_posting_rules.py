"""The shape of a posting, checked before the database sees it: a programming error raises."""

from __future__ import annotations

import uuid

import pytest

from app.ledger.schemas import Leg
from app.ledger.service import check_legs

IDS = [uuid.UUID(int=i) for i in range(1, 4)]


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
        check_legs(legs)


def test_balanced_legs_pass() -> None:
    check_legs([Leg(account_id=IDS[0], amount=-7), Leg(account_id=IDS[1], amount=7)])
