"""HTTP endpoints of deposits: create (idempotent, 202), read."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.auth.dependencies import CurrentUser
from app.core.dependencies import SessionDep
from app.core.openapi import error_responses
from app.deposits import service as deposits_service
from app.deposits.schemas import DepositCreate, DepositRead
from app.idempotency import service as idempotency_service
from app.idempotency.dependencies import IdempotencyDep, outcome_response

router = APIRouter(prefix="/deposits", tags=["deposits"])


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
