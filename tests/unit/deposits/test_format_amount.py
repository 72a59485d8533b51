"""Amounts in receipts: minor units as a person reads them, exact at every size."""

from __future__ import annotations

import pytest

from app.core.types import MAX_MINOR_UNITS
from app.deposits.service import format_amount


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1, "EUR", "0.01 EUR"),
        (1250, "EUR", "12.50 EUR"),
        (123456, "USD", "1,234.56 USD"),
        (5000, "JPY", "5,000 JPY"),
        (1005, "KWD", "1.005 KWD"),
        (MAX_MINOR_UNITS - 1, "EUR", "9,999,999,999,999.99 EUR"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text
