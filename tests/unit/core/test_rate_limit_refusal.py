"""A refusal's reset: the soonest moment a hit fades, never 0 for a window that just opened."""

from __future__ import annotations

from limits import parse

from app.core.rate_limit import refusal


def test_a_refusal_in_the_millisecond_a_window_opened_waits_the_whole_window() -> None:
    # Three hits in the current window, whose key was set with a ttl of twice 60 s an instant ago.
    verdict = refusal(parse("3/minute"), (0, 0, 3, 120_000))
    assert (verdict.allowed, verdict.remaining, verdict.reset_after) == (False, 0, 60)
    assert verdict.headers["Retry-After"] == "60"


def test_later_in_the_window_it_waits_for_the_windows_end() -> None:
    assert refusal(parse("3/minute"), (0, 0, 3, 100_500)).reset_after == 41


def test_the_previous_windows_hits_fade_one_by_one() -> None:
    # 2 hits 20 s before the window ended: each fades 30 s after the other, the next in 10 s.
    verdict = refusal(parse("2/minute"), (2, 40_000, 1, 110_000))
    assert verdict.reset_after == 10
    assert verdict.remaining == 0
