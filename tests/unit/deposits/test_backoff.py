"""with_backoff: transient errors retried after 1, 2, 4… s, within attempts and the time budget."""

from __future__ import annotations

import pytest

from app.deposits.tasks import with_backoff


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0
        self.pauses: list[float] = []

    async def run(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def test_transient_errors_are_retried_with_doubling_pauses() -> None:
    flaky = Flaky(2, TimeoutError())
    result = await with_backoff(flaky.run, transient=TimeoutError, sleep=flaky.sleep)
    assert (result, flaky.calls, flaky.pauses) == ("done", 3, [1, 2])


async def test_the_last_error_escapes_after_every_attempt() -> None:
    flaky = Flaky(10, TimeoutError())
    with pytest.raises(TimeoutError):
        await with_backoff(
            flaky.run, transient=TimeoutError, attempts=5, budget_seconds=100, sleep=flaky.sleep
        )
    assert (flaky.calls, flaky.pauses) == (5, [1, 2, 4, 8])


async def test_no_retry_starts_past_the_budget() -> None:
    flaky = Flaky(10, TimeoutError())
    with pytest.raises(TimeoutError):
        await with_backoff(
            flaky.run, transient=TimeoutError, attempts=5, budget_seconds=3.5, sleep=flaky.sleep
        )
    assert (flaky.calls, flaky.pauses) == (3, [1, 2])  # a pause of 4 would pass 3.5 s


async def test_other_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        await with_backoff(flaky.run, transient=TimeoutError, sleep=flaky.sleep)
    assert (flaky.calls, flaky.pauses) == (1, [])
