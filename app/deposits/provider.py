"""The payment provider (PSP) behind an interface, and the deterministic fake for tests and demo.

`PSP_PROVIDER=fake` (the default; production refuses it) decides by the amount in minor units,
as SPEC §6 says: `% 100 == 13` is declined (`card_declined`); `== 42` errors on the first two
attempts, then succeeds; `== 77` answers "pending" (a webhook finishes it); anything else
succeeds. Every charge takes `PSP_FAKE_LATENCY_MS`. The deposit id is the provider's idempotency
key: charging the same deposit again returns the first answer, as a real provider does.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

ChargeStatus = Literal["succeeded", "declined", "pending"]


@dataclass(frozen=True)
class Charge:
    """The provider's answer to one charge."""

    status: ChargeStatus
    failure_code: str | None = None


class ProviderUnavailableError(Exception):
    """The provider did not answer usefully (timeout, 5xx): the charge may be retried."""


class PaymentProvider(Protocol):
    """Charges a card; `deposit_id` is the idempotency key, so a retry never charges twice."""

    async def charge(self, *, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        """Charge `amount` minor units; raise ProviderUnavailableError when it may be retried."""
        ...


DECLINED, FLAKY, PENDING = 13, 42, 77
FLAKY_FAILURES = 2


class FakeProvider:
    """SPEC §6's deterministic provider. Its memory (attempts, answers) is per process."""

    def __init__(self, *, latency_ms: int) -> None:
        self.latency_seconds = latency_ms / 1000
        self._attempts: dict[uuid.UUID, int] = {}
        self._answers: dict[uuid.UUID, Charge] = {}

    async def charge(self, *, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        """Answer by the amount's last two digits, after the configured latency."""
        await asyncio.sleep(self.latency_seconds)
        if deposit_id in self._answers:  # idempotent by deposit id
            return self._answers[deposit_id]
        attempts = self._attempts[deposit_id] = self._attempts.get(deposit_id, 0) + 1
        cents = amount % 100
        if cents == FLAKY and attempts <= FLAKY_FAILURES:
            raise ProviderUnavailableError(f"fake provider error (attempt {attempts})")
        if cents == DECLINED:
            answer = Charge(status="declined", failure_code="card_declined")
        elif cents == PENDING:
            answer = Charge(status="pending")
        else:
            answer = Charge(status="succeeded")
        self._answers[deposit_id] = answer
        return answer
