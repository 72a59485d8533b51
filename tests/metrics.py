"""Reading the business counters in tests: a counter's value now, so a test asserts its change."""

from __future__ import annotations

from app.core.metrics import BUSINESS


def sample(name: str, **labels: str) -> float:
    """The current value of one series of the business registry (0 if never counted)."""
    return BUSINESS.get_sample_value(name, labels) or 0.0
