"""Use cases of adjustments. Never commits: the request's transaction does."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.adjustments import repository
from app.adjustments.models import Adjustment
from app.adjustments.schemas import AdjustmentCreate, AdjustmentRead
from app.core.errors import NotFoundError, Refusal
from app.core.logging import get_logger
from app.ledger import service as ledger_service
from app.ledger.schemas import LedgerKind, Leg

logger = get_logger(__name__)


async def create_adjustment(
    session: AsyncSession, *, admin_id: uuid.UUID, account_id: uuid.UUID, data: AdjustmentCreate
) -> AdjustmentRead:
    """Post `amount` to a user account against the system account; debits need the funds."""
    account = await accounts_service.get_account_ref(session, account_id=account_id)
    if account is None or account.kind != "user":
        raise NotFoundError("No such account.")
    system_id = await accounts_service.system_account_id(session, currency=account.currency)
    posted = await ledger_service.post_transaction(
        session,
        kind=LedgerKind.ADJUSTMENT,
        legs=[
            Leg(account_id=account.id, amount=data.amount),
            Leg(account_id=system_id, amount=-data.amount),
        ],
    )
    if isinstance(posted, Refusal):
        raise posted.error  # a refused adjustment leaves no record: nothing to keep
    adjustment = await repository.add(
        session,
        Adjustment(
            account_id=account.id,
            ledger_transaction_id=posted,
            amount=data.amount,
            reason=data.reason,
            created_by=admin_id,
        ),
    )
    logger.info(
        "adjustment_posted",
        adjustment_id=str(adjustment.id),
        account_id=str(account.id),
        amount=data.amount,
        admin_id=str(admin_id),
    )
    return AdjustmentRead.model_validate(adjustment)
