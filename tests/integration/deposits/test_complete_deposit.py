"""Completing a deposit (the worker's task body, run in-process): credited at most once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.deposits import service as deposits_service
from app.deposits.provider import Charge, ChargeStatus, FakeProvider, ProviderUnavailableError
from app.deposits.tasks import complete_deposit
from app.ledger import service as ledger_service
from tests.factories import SignedIn, make_deposit, signed_in_user


@dataclass
class Deposit:
    """A pending deposit of a new user's, and what a test does with it."""

    http: AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    user: SignedIn
    account_id: str
    id: uuid.UUID

    async def complete(self, provider: FakeProvider | None = None) -> str:
        """The worker's task body, once."""
        provider = provider or FakeProvider(latency_ms=0)
        return await complete_deposit(self.id, sessions=self.sessions, provider=provider)

    async def finish(self, status: ChargeStatus) -> str:
        """The provider's answer arriving (a webhook), in a committed transaction."""
        async with self.sessions() as session, session.begin():
            return await deposits_service.finish_deposit(
                session, deposit_id=self.id, charge=Charge(status=status)
            )

    async def balance(self) -> int:
        url = f"/api/v1/accounts/{self.account_id}"
        balance: int = (await self.http.get(url, headers=self.user.headers)).json()["balance"]
        return balance

    async def read(self) -> dict[str, object]:
        url = f"/api/v1/deposits/{self.id}"
        deposit: dict[str, object] = (await self.http.get(url, headers=self.user.headers)).json()
        return deposit

    async def breaches(self) -> list[str]:
        async with self.sessions() as session:
            return await ledger_service.verify_ledger(session)


NewDeposit = Callable[[int], Awaitable[Deposit]]


@pytest.fixture
def new_deposit(live_http: AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> NewDeposit:
    async def new(amount: int) -> Deposit:
        user = await signed_in_user(live_http)
        account_id, deposit_id = await make_deposit(live_http, user, amount)
        return Deposit(live_http, sessions, user, account_id, uuid.UUID(deposit_id))

    return new


async def test_a_successful_charge_credits_once_and_a_second_run_does_nothing(
    new_deposit: NewDeposit,
) -> None:
    deposit = await new_deposit(5000)
    assert await deposit.complete() == "succeeded"
    read = await deposit.read()
    assert (await deposit.balance(), read["status"], read["failure_code"]) == (
        5000,
        "succeeded",
        None,
    )
    assert await deposit.complete() == "final"  # redelivered: nothing changes
    assert await deposit.balance() == 5000
    assert await deposit.breaches() == []


async def test_a_declined_card_fails_the_deposit_without_moving_money(
    new_deposit: NewDeposit,
) -> None:
    deposit = await new_deposit(1013)
    assert await deposit.complete() == "failed"
    read = await deposit.read()
    assert (await deposit.balance(), read["status"], read["failure_code"]) == (
        0,
        "failed",
        "card_declined",
    )
    # A later "success" (a late webhook) cannot change a finished deposit.
    assert await deposit.finish("succeeded") == "failed"
    assert await deposit.balance() == 0


async def test_a_pending_charge_waits_for_the_provider_and_finishes_once(
    new_deposit: NewDeposit,
) -> None:
    deposit = await new_deposit(7777)
    assert await deposit.complete() == "pending"
    assert (await deposit.read())["status"] == "pending"
    for _ in range(2):  # the provider's answer arrives (twice: webhooks are redelivered too)
        await deposit.finish("succeeded")
    assert (await deposit.balance(), (await deposit.read())["status"]) == (7777, "succeeded")


async def test_a_provider_error_is_raised_for_a_retry_and_the_retry_credits_once(
    new_deposit: NewDeposit,
) -> None:
    deposit = await new_deposit(4242)
    provider = FakeProvider(latency_ms=0)
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await deposit.complete(provider)
        assert (await deposit.read())["status"] == "pending"
    assert await deposit.complete(provider) == "succeeded"
    # The reads above cached the account at 0. A commit outside a request (a worker) reaches the
    # cache through the re-drive (ADR 0016: NOTIFY, at the latest CACHE_REDRIVE_SECONDS), not
    # synchronously: the new balance shows within that bound.
    deadline = asyncio.get_running_loop().time() + 5
    while (balance := await deposit.balance()) != 4242:
        assert asyncio.get_running_loop().time() < deadline, balance
        await asyncio.sleep(0.1)


class AnswersTogether(FakeProvider):
    """A provider client that answers once every worker has asked: all of them charge."""

    def __init__(self, everyone: asyncio.Barrier) -> None:
        super().__init__(latency_ms=20)
        self._everyone = everyone

    async def charge(self, *, deposit_id: uuid.UUID, amount: int, currency: str) -> Charge:
        await self._everyone.wait()
        return await super().charge(deposit_id=deposit_id, amount=amount, currency=currency)


async def test_two_workers_on_the_same_deposit_credit_it_once(new_deposit: NewDeposit) -> None:
    deposit = await new_deposit(2500)
    # Each worker its own provider client: all charges go through (the real provider would
    # dedupe them by the deposit id); the row lock lets exactly one of them credit. No answer
    # comes before all four have read the deposit as pending: else a worker slow to read it
    # (a new pool connection on a busy machine) would find it final and never charge.
    everyone = asyncio.Barrier(4)
    async with asyncio.timeout(10):
        results = await asyncio.gather(
            *(deposit.complete(AnswersTogether(everyone)) for _ in range(4))
        )
    assert set(results) == {"succeeded"}
    assert await deposit.balance() == 2500
    assert await deposit.breaches() == []
