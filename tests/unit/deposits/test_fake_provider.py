"""SPEC §6's fake payment provider: the amount's last two digits decide, deterministically."""

from __future__ import annotations

import uuid

import pytest

from app.deposits.provider import Charge, FakeProvider, ProviderUnavailableError


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(latency_ms=0)


async def test_an_ordinary_amount_succeeds(provider: FakeProvider) -> None:
    charge = await provider.charge(deposit_id=uuid.uuid4(), amount=5000, currency="EUR")
    assert charge == Charge(status="succeeded")


async def test_13_is_declined(provider: FakeProvider) -> None:
    charge = await provider.charge(deposit_id=uuid.uuid4(), amount=1013, currency="EUR")
    assert charge == Charge(status="declined", failure_code="card_declined")


async def test_42_errors_twice_then_succeeds(provider: FakeProvider) -> None:
    deposit_id = uuid.uuid4()
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await provider.charge(deposit_id=deposit_id, amount=4242, currency="EUR")
    assert await provider.charge(deposit_id=deposit_id, amount=4242, currency="EUR") == Charge(
        status="succeeded"
    )


async def test_77_stays_pending(provider: FakeProvider) -> None:
    charge = await provider.charge(deposit_id=uuid.uuid4(), amount=77, currency="EUR")
    assert charge == Charge(status="pending")


async def test_the_deposit_id_is_the_idempotency_key(provider: FakeProvider) -> None:
    deposit_id = uuid.uuid4()
    first = await provider.charge(deposit_id=deposit_id, amount=1013, currency="EUR")
    # The same deposit again: the first answer, whatever the amount now says.
    again = await provider.charge(deposit_id=deposit_id, amount=5000, currency="EUR")
    assert again == first
