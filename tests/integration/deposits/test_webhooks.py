"""The provider's webhook (SPEC §6): signed over the raw body, each event applied once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.models import TaskOutboxEntry
from app.deposits.models import WebhookEvent
from app.deposits.signature import sign, signature
from app.ledger import service as ledger_service
from tests.factories import SignedIn, make_deposit, signed_in_user

WEBHOOK = "/api/v1/webhooks/psp"
PENDING_AMOUNT = 2577  # the fake provider's "pending": only a webhook finishes it


def _secret(app: FastAPI) -> str:
    secret: str = app.state.webhook_verifier.secret
    return secret


def _event(deposit_id: str, kind: str = "charge.succeeded", **data: str) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": kind,
        "data": {"deposit_id": deposit_id, **data},
    }


async def _post(
    client: AsyncClient, app: FastAPI, event: dict[str, Any] | bytes, *, header: str | None = None
) -> Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    signed = sign(_secret(app), body) if header is None else header
    return await client.post(
        WEBHOOK, content=body, headers={"Content-Type": "application/json", "PSP-Signature": signed}
    )


async def _pending_deposit(client: AsyncClient, user: SignedIn) -> tuple[str, str]:
    return await make_deposit(client, user, PENDING_AMOUNT)


async def _read(client: AsyncClient, user: SignedIn, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _receipt_tasks(session: AsyncSession, deposit_id: str) -> int | None:
    return await session.scalar(
        select(func.count())
        .select_from(TaskOutboxEntry)
        .where(
            TaskOutboxEntry.task_name == "deposits.send_receipt",
            TaskOutboxEntry.arguments.contains(deposit_id),
        )
    )


async def test_a_signed_success_credits_the_deposit_once_and_a_redelivery_does_nothing(
    client: AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account_id, deposit_id = await _pending_deposit(client, user)
    event = _event(deposit_id)

    first = await _post(client, app, event)
    assert (first.status_code, first.json()) == (200, {"received": True})
    deposit = await _read(client, user, f"/api/v1/deposits/{deposit_id}")
    assert (deposit["status"], deposit["failure_code"]) == ("succeeded", None)
    assert (await _read(client, user, f"/api/v1/accounts/{account_id}"))["balance"] == 2577
    assert await _receipt_tasks(session, deposit_id) == 1

    again = await _post(client, app, event)  # the provider did not see our 200: it resends
    assert (again.status_code, again.json()) == (200, {"received": True})
    assert (await _read(client, user, f"/api/v1/accounts/{account_id}"))["balance"] == 2577
    entries = await _read(client, user, f"/api/v1/accounts/{account_id}/entries")
    assert len(entries["items"]) == 1
    assert await _receipt_tasks(session, deposit_id) == 1
    assert await ledger_service.verify_ledger(session) == []


async def test_a_failure_is_recorded_and_a_later_event_cannot_change_a_final_deposit(
    client: AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    account_id, deposit_id = await _pending_deposit(client, user)
    failed = await _post(client, app, _event(deposit_id, "charge.failed", failure_code="expired"))
    assert failed.status_code == 200, failed.text
    deposit = await _read(client, user, f"/api/v1/deposits/{deposit_id}")
    assert (deposit["status"], deposit["failure_code"]) == ("failed", "expired")

    late = _event(deposit_id, "charge.succeeded")
    contradicting = await _post(client, app, late)
    assert (contradicting.status_code, contradicting.json()) == (200, {"received": True})
    assert (await _read(client, user, f"/api/v1/deposits/{deposit_id}"))["status"] == "failed"
    assert (await _read(client, user, f"/api/v1/accounts/{account_id}"))["balance"] == 0
    assert await _receipt_tasks(session, deposit_id) == 0
    # Recorded all the same: its redelivery is a plain duplicate.
    assert await session.get(WebhookEvent, late["id"]) is not None


def _header(secret: str, body: bytes, *, at: int, extra: str = "") -> str:
    return f"t={at},v1={signature(secret, timestamp=at, body=body)}{extra}"


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda secret, body, now: None, id="missing"),
        pytest.param(lambda secret, body, now: "", id="empty"),
        pytest.param(lambda secret, body, now: "garbage", id="no-pairs"),
        pytest.param(lambda secret, body, now: f"t={now}", id="no-v1"),
        pytest.param(
            lambda secret, body, now: f"v1={signature(secret, timestamp=now, body=body)}",
            id="no-timestamp",
        ),
        pytest.param(lambda secret, body, now: f"t=soon,v1={'0' * 64}", id="bad-timestamp"),
        # A minute past the 300 s tolerance: `now` is the wall clock truncated to a second and
        # read before the request, so a 301 s lead could shrink under 300 s by the check (it
        # did, in CI). The exact edge is tested with a given clock in tests/unit/deposits.
        pytest.param(lambda secret, body, now: _header(secret, body, at=now - 360), id="stale"),
        pytest.param(lambda secret, body, now: _header(secret, body, at=now + 360), id="future"),
        pytest.param(lambda secret, body, now: _header("another", body, at=now), id="wrong-key"),
        pytest.param(
            lambda secret, body, now: _header(secret, body + b" ", at=now), id="other-body"
        ),
        pytest.param(
            # Within the tolerance, so only the signature can refuse it: the time is signed.
            lambda secret, body, now: _header(secret, body, at=now).replace(
                f"t={now}", f"t={now - 1}"
            ),
            id="other-timestamp",
        ),
    ],
)
async def test_a_bad_signature_is_refused_and_changes_nothing(
    client: AsyncClient, app: FastAPI, make_header: Any
) -> None:
    user = await signed_in_user(client)
    _, deposit_id = await _pending_deposit(client, user)
    body = json.dumps(_event(deposit_id)).encode()
    header = make_header(_secret(app), body, int(time.time()))
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["PSP-Signature"] = header
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "invalid_signature"
    assert (await _read(client, user, f"/api/v1/deposits/{deposit_id}"))["status"] == "pending"


async def test_rotation_one_matching_v1_among_several_is_enough(
    client: AsyncClient, app: FastAPI
) -> None:
    user = await signed_in_user(client)
    _, deposit_id = await _pending_deposit(client, user)
    body = json.dumps(_event(deposit_id)).encode()
    at = int(time.time()) - 240  # late, inside the 300 s tolerance (its edge: tests/unit)
    rolled = f"t={at},v1={signature('the-old-secret', timestamp=at, body=body)}"
    header = f"{rolled},v1={signature(_secret(app), timestamp=at, body=body)},v2=ignored"
    response = await _post(client, app, body, header=header)
    assert response.status_code == 200, response.text
    assert (await _read(client, user, f"/api/v1/deposits/{deposit_id}"))["status"] == "succeeded"


async def test_the_signature_is_checked_before_the_body_is_read(
    client: AsyncClient, app: FastAPI
) -> None:
    unsigned_garbage = await client.post(
        WEBHOOK, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert unsigned_garbage.status_code == 400
    assert unsigned_garbage.json()["error"] == "invalid_signature"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"id": "evt_1", "type": "charge.refunded", "data": {}}', "body.type"),
        (b'{"id": "evt_1", "type": "charge.succeeded", "data": {"deposit_id": "7"}}', None),
        (
            json.dumps(
                {"id": "evt_1", "type": "charge.failed", "data": {"deposit_id": str(uuid.uuid4())}}
            ).encode(),
            "body",
        ),
    ],
)
async def test_a_well_signed_malformed_body_is_a_validation_error(
    client: AsyncClient, app: FastAPI, body: bytes, field: str | None
) -> None:
    response = await _post(client, app, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert problem["fields"]
    if field is not None:
        assert any(f["field"] == field for f in problem["fields"]), problem["fields"]


async def test_text_the_database_cannot_store_is_a_validation_error_naming_the_field(
    client: AsyncClient, app: FastAPI
) -> None:
    user = await signed_in_user(client)
    _, deposit_id = await _pending_deposit(client, user)
    event = _event(deposit_id)
    event["id"] = "evt_\u0000"
    response = await _post(client, app, event)
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == ["body.id"]

    failed = _event(deposit_id, "charge.failed", failure_code="card\u0000declined")
    response = await _post(client, app, failed)
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == ["body.data.failure_code"]


async def test_an_unknown_deposit_is_not_found_and_the_event_is_not_kept(
    client: AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    event = _event(str(uuid.uuid4()))
    response = await _post(client, app, event)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert await session.get(WebhookEvent, event["id"]) is None


async def test_the_same_event_delivered_many_times_at_once_credits_once(
    live_http: AsyncClient, live_app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user = await signed_in_user(live_http)
    account_id, deposit_id = await _pending_deposit(live_http, user)
    event = _event(deposit_id)
    answers = await asyncio.gather(*(_post(live_http, live_app, event) for _ in range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert (await _read(live_http, user, f"/api/v1/accounts/{account_id}"))["balance"] == 2577
    async with sessions() as session:
        assert await _receipt_tasks(session, deposit_id) == 1
        assert await ledger_service.verify_ledger(session) == []
