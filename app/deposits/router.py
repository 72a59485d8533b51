"""HTTP endpoints of deposits: create (idempotent, 202), read; the provider's webhook."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic.json_schema import SkipJsonSchema

from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep
from app.core.openapi import error_responses, raw_json_body
from app.deposits import service as deposits_service
from app.deposits.schemas import DepositCreate, DepositRead, WebhookEvent, WebhookReceived
from app.deposits.signature import HEADER, SignatureVerifier
from app.idempotency import service as idempotency_service
from app.idempotency.dependencies import IdempotencyDep, outcome_response

router = APIRouter(prefix="/deposits", tags=["deposits"])
webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DepositRead,
    operation_id="create_deposit",
    responses=error_responses(400, 401, 404, 409, 422),
)
async def create_deposit(
    data: DepositCreate, user: CurrentUser, session: SessionDep, idempotency: IdempotencyDep
) -> Response:
    """Top up one of your accounts from a card: `pending` now, finished by a worker.

    Requires an `Idempotency-Key` header, like a payment. Poll `GET /deposits/{id}`.
    """
    outcome = await idempotency_service.run_once(
        session,
        request=idempotency,
        success_status=status.HTTP_202_ACCEPTED,
        operation=lambda: deposits_service.create_deposit(session, owner_id=user.id, data=data),
    )
    return outcome_response(outcome)


@router.get("/{deposit_id}", operation_id="read_deposit", responses=error_responses(401, 404, 422))
async def read_deposit(
    deposit_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> DepositRead:
    """One of your deposits: `pending`, `succeeded` or `failed` (with `failure_code`)."""
    return await deposits_service.get_deposit(session, owner_id=user.id, deposit_id=deposit_id)


@webhooks_router.post(
    "/psp",
    operation_id="receive_psp_webhook",
    responses=error_responses(400, 404, 422),
    openapi_extra=raw_json_body(WebhookEvent),
)
async def receive_psp_webhook(
    request: Request,
    session: SessionDep,
    psp_signature: Annotated[
        str | SkipJsonSchema[None],
        Header(alias=HEADER, description="`t=<unix seconds>,v1=<hex>`, one or more `v1`."),
    ] = None,
) -> WebhookReceived:
    """The payment provider's event about a charge, signed with `PSP-Signature`.

    The signature is checked over the raw body before anything is parsed; an event id seen
    before, or one about a deposit already final, is acknowledged and changes nothing.
    """
    body = await request.body()
    verifier: SignatureVerifier = request.app.state.webhook_verifier
    verifier.verify(psp_signature, body)
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    await deposits_service.apply_webhook(session, event=event)
    return WebhookReceived(received=True)
