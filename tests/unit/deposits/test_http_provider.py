"""HttpProvider against a mocked transport: the wire format, retries and how answers map."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest

from app.core.config import Settings
from app.deposits.provider import (
    Charge,
    FakeProvider,
    HttpProvider,
    ProviderRejectedError,
    ProviderUnavailableError,
    build_provider,
)
from tests.production_settings import PRODUCTION

API_KEY = "sk_test_do-not-leak"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A provider stand-in: answers from a script, remembers each request and each pause."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.pauses: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def provider(self, *, attempts: int = 3) -> HttpProvider:
        return HttpProvider(
            base_url="https://psp.example.test",
            api_key=API_KEY,
            timeout_seconds=2,
            attempts=attempts,
            backoff_seconds=0.5,
            transport=httpx.MockTransport(self.handle),
            sleep=self.sleep,
        )


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


async def charge(provider: HttpProvider, deposit_id: uuid.UUID | None = None) -> Charge:
    return await provider.charge(deposit_id=deposit_id or uuid.uuid4(), amount=1999, currency="EUR")


async def test_a_charge_is_one_authorised_post_keyed_by_the_deposit_id() -> None:
    psp = Recorder(answer(201, {"status": "succeeded"}))
    deposit_id = uuid.uuid4()
    assert await charge(psp.provider(), deposit_id) == Charge(status="succeeded")
    [request] = psp.requests
    assert request.method == "POST"
    assert str(request.url) == "https://psp.example.test/v1/charges"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == str(deposit_id)
    assert json.loads(request.content) == {
        "amount": 1999,
        "currency": "EUR",
        "reference": str(deposit_id),
    }
    assert psp.pauses == []


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(200, {"status": "succeeded"}), Charge(status="succeeded")),
        (answer(200, {"status": "pending"}), Charge(status="pending")),
        (
            answer(200, {"status": "declined", "failure_code": "insufficient_funds"}),
            Charge(status="declined", failure_code="insufficient_funds"),
        ),
        (
            answer(200, {"status": "declined"}),
            Charge(status="declined", failure_code="card_declined"),
        ),
        (
            answer(402, {"failure_code": "expired_card"}),
            Charge(status="declined", failure_code="expired_card"),
        ),
    ],
)
async def test_answers_map_to_charges(response: httpx.Response, expected: Charge) -> None:
    assert await charge(Recorder(response).provider()) == expected


async def test_a_5xx_is_retried_with_the_same_key_and_growing_pauses() -> None:
    psp = Recorder(answer(503), answer(502), answer(201, {"status": "succeeded"}))
    assert await charge(psp.provider()) == Charge(status="succeeded")
    assert len(psp.requests) == 3
    assert len({request.headers["Idempotency-Key"] for request in psp.requests}) == 1
    assert psp.pauses == [0.5, 1.0]


async def test_timeouts_and_broken_connections_end_unavailable_after_every_attempt() -> None:
    psp = Recorder(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailableError, match="after 3 tries: ConnectError"):
        await charge(psp.provider())
    assert len(psp.requests) == 3
    assert psp.pauses == [0.5, 1.0]  # no pause after the last attempt


async def test_retry_after_is_honoured_and_capped() -> None:
    psp = Recorder(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(503, headers={"Retry-After": "3600"}),
        answer(200, {"status": "succeeded"}),
    )
    assert await charge(psp.provider()) == Charge(status="succeeded")
    assert psp.pauses == [2.0, 5.0]


@pytest.mark.parametrize(
    "response",
    [
        answer(400, {"error": "bad currency"}),
        answer(401, {"error": "bad key"}),
        answer(409, {"error": "key reused with another body"}),
        httpx.Response(200, content=b"<html>not json</html>"),
        answer(200, ["a", "list"]),
        answer(200, {"status": "refunded"}),
    ],
)
async def test_a_refusal_or_an_unreadable_answer_is_rejected_after_one_call(
    response: httpx.Response,
) -> None:
    psp = Recorder(response)
    with pytest.raises(ProviderRejectedError) as raised:
        await charge(psp.provider())
    assert len(psp.requests) == 1
    assert API_KEY not in str(raised.value)


def test_build_provider_follows_psp_provider() -> None:
    assert isinstance(build_provider(Settings(**PRODUCTION)), HttpProvider)
    assert isinstance(build_provider(Settings()), FakeProvider)  # the development default
