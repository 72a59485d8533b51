"""The payment provider (PSP) behind an interface, and the deterministic fake for tests and demo.

`PSP_PROVIDER=fake` (the default; production refuses it) decides by the amount in minor units,
as SPEC §6 says: `% 100 == 13` is declined (`card_declined`); `== 42` errors on the first two
attempts, then succeeds; `== 77` answers "pending" (a webhook finishes it); anything else
succeeds. Every charge takes `PSP_FAKE_LATENCY_MS`. The deposit id is the provider's idempotency
key: charging the same deposit again returns the first answer, as a real provider does.

`PSP_PROVIDER=http` is `HttpProvider`, a real provider's client. Its wire format is this
project's own, small enough to map onto any provider's API:
- `POST {PSP_BASE_URL}/v1/charges`, `Authorization: Bearer <PSP_API_KEY>`,
  `Idempotency-Key: <deposit id>`, body `{"amount": <minor units>, "currency", "reference"}`;
- 200/201 `{"status": "succeeded" | "pending"}` or `{"status": "declined", "failure_code"}`;
  402 `{"failure_code"}` is a decline too;
- a timeout, a broken connection, 429 or 5xx is transient: retried here with backoff (the same
  Idempotency-Key, so never charged twice), then ProviderUnavailableError, which the task
  retries; any other answer is ProviderRejectedError (a bug on one side: never retried).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from app.core.config import Settings

ChargeStatus = Literal["succeeded", "declined", "pending"]


@dataclass(frozen=True)
class Charge:
    """The provider's answer to one charge."""

    status: ChargeStatus
    failure_code: str | None = None


class ProviderUnavailableError(Exception):
    """The provider did not answer usefully (timeout, 5xx): the charge may be retried."""


class ProviderRejectedError(Exception):
    """The provider refused the request itself (4xx, an unreadable answer): retrying is futile."""


class PaymentProvider(Protocol):
    """Charges a card; `deposit_id` is the idempotency key, so a retry never charges twice."""

    async def charge(self, *, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        """Charge `amount` minor units; raise ProviderUnavailableError when it may be retried."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
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

    async def aclose(self) -> None:
        """Nothing to release."""


_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_SECONDS = 5.0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return min(float(value), _MAX_RETRY_AFTER_SECONDS) if value.isdigit() else None


def _answer(response: httpx.Response) -> Charge:
    try:
        body: Any = response.json()
    except ValueError:
        raise ProviderRejectedError(f"unreadable answer (HTTP {response.status_code})") from None
    if not isinstance(body, dict):
        raise ProviderRejectedError(f"unexpected answer (HTTP {response.status_code})")
    code = body.get("failure_code")
    if response.status_code == 402:
        return Charge(status="declined", failure_code=str(code or "card_declined"))
    status = body.get("status")
    if status in ("succeeded", "pending"):
        return Charge(status=status)
    if status == "declined":
        return Charge(status="declined", failure_code=str(code or "card_declined"))
    raise ProviderRejectedError(f"unknown charge status {status!r}")


class HttpProvider:
    """A real provider over HTTP (the wire format is in this module's docstring)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_seconds: float,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.attempts, self.backoff_seconds, self._sleep = attempts, backoff_seconds, sleep
        # One client: its connections are pooled across charges.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )

    async def charge(self, *, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        """Charge once per deposit id; transient failures retried, then ProviderUnavailableError."""
        body = {"amount": amount, "currency": currency, "reference": str(deposit_id)}
        cause = "no attempt"
        for attempt in range(1, self.attempts + 1):
            pause = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                response = await self._client.post(
                    "/v1/charges", json=body, headers={"Idempotency-Key": str(deposit_id)}
                )
            except httpx.TransportError as exc:  # timeouts, refused or broken connections
                cause = type(exc).__name__
            else:
                if response.status_code not in _TRANSIENT_STATUSES:
                    if response.status_code in (200, 201, 402):
                        return _answer(response)
                    raise ProviderRejectedError(f"HTTP {response.status_code} from the provider")
                cause = f"HTTP {response.status_code}"
                pause = _retry_after(response) or pause
            if attempt < self.attempts:
                await self._sleep(pause)
        raise ProviderUnavailableError(f"provider unavailable after {self.attempts} tries: {cause}")

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def build_provider(settings: Settings) -> PaymentProvider:
    """The provider PSP_PROVIDER names."""
    if settings.PSP_PROVIDER == "http":
        return HttpProvider(
            base_url=settings.PSP_BASE_URL,
            api_key=settings.PSP_API_KEY.get_secret_value(),
            timeout_seconds=settings.PSP_TIMEOUT_SECONDS,
        )
    return FakeProvider(latency_ms=settings.PSP_FAKE_LATENCY_MS)
