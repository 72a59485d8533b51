"""HTTP endpoint of back-office adjustments (admin only, idempotent)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.adjustments import service as adjustments_service
from app.adjustments.schemas import AdjustmentCreate, AdjustmentRead
from app.auth.dependencies import AdminUser
from app.core.dependencies import SessionDep
from app.core.openapi import error_responses
from app.idempotency import service as idempotency_service
from app.idempotency.dependencies import IdempotencyDep, outcome_response

router = APIRouter(prefix="/admin/accounts", tags=["admin"])


@router.post(
    "/{account_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    response_model=AdjustmentRead,
    operation_id="create_adjustment",
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def create_adjustment(
    account_id: uuid.UUID,
    data: AdjustmentCreate,
    admin: AdminUser,
    session: SessionDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Credit or debit a user's account against the system account, with a recorded reason.

    Admin only. Requires an `Idempotency-Key` header, like every money-moving call.
    """
    outcome = await idempotency_service.run_once(
        session,
        request=idempotency,
        success_status=status.HTTP_201_CREATED,
        operation=lambda: adjustments_service.create_adjustment(
            session, admin_id=admin.id, account_id=account_id, data=data
        ),
    )
    return outcome_response(outcome)
