"""HTTP endpoints of payments: create (idempotent), list, read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.core.dependencies import CacheDep, PageParamsDep, SessionDep
from app.core.openapi import error_responses
from app.idempotency import service as idempotency_service
from app.idempotency.dependencies import IdempotencyDep, outcome_response
from app.payments import service as payments_service
from app.payments.schemas import PaymentCreate, PaymentFilters, PaymentList, PaymentRead

router = APIRouter(prefix="/payments", tags=["payments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentRead,
    operation_id="create_payment",
    responses=error_responses(400, 401, 404, 409, 422),
)
async def create_payment(
    data: PaymentCreate, user: CurrentUser, session: SessionDep, idempotency: IdempotencyDep
) -> Response:
    """Transfer money from one of your accounts to any account in the same currency.

    Requires an `Idempotency-Key` header: a retry with the same key and body replays the
    first response (`Idempotent-Replayed: true`) and never pays twice.
    """
    outcome = await idempotency_service.run_once(
        session,
        request=idempotency,
        success_status=status.HTTP_201_CREATED,
        operation=lambda: payments_service.create_payment(session, owner_id=user.id, data=data),
    )
    return outcome_response(outcome)


@router.get("", operation_id="list_payments", responses=error_responses(401, 422))
async def list_payments(
    user: CurrentUser,
    session: SessionDep,
    page: PageParamsDep,
    filters: Annotated[PaymentFilters, Query()],
    cache: CacheDep,
) -> PaymentList:
    """Payments you made, newest first, optionally filtered (cursor pagination).

    Cached until your next payment, which shows in the list at once.
    """
    return await payments_service.list_payments(
        session, owner_id=user.id, filters=filters, page=page, cache=cache
    )


@router.get("/{payment_id}", operation_id="read_payment", responses=error_responses(401, 404, 422))
async def read_payment(
    payment_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> PaymentRead:
    """One of your payments."""
    return await payments_service.get_payment(session, owner_id=user.id, payment_id=payment_id)
