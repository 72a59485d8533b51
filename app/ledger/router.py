"""HTTP endpoints of an account's ledger: its summary over a period and its statement."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.auth.dependencies import CurrentUser
from app.core.dependencies import CacheDep, PageParamsDep, SessionDep
from app.core.openapi import error_responses
from app.ledger import service as ledger_service
from app.ledger.dependencies import SummaryPeriodDep
from app.ledger.schemas import AccountSummary, EntryList

# Under /accounts, as the caller sees them: an account's money is read where the account is.
router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.get(
    "/{account_id}/summary",
    operation_id="read_account_summary",
    responses=error_responses(401, 404, 422),
)
async def read_account_summary(
    account_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    cache: CacheDep,
    period: SummaryPeriodDep,
) -> AccountSummary:
    """Totals in and out, and the number of entries, over a period (open-ended if omitted).

    An aggregate over the statement, cached until the account's next posting.
    """
    return await ledger_service.get_summary(
        session, user_id=user.id, account_id=account_id, period=period, cache=cache
    )


@router.get(
    "/{account_id}/entries",
    operation_id="list_account_entries",
    responses=error_responses(401, 404, 422),
)
async def list_account_entries(
    account_id: uuid.UUID, user: CurrentUser, session: SessionDep, page: PageParamsDep
) -> EntryList:
    """The account's statement: its ledger entries, newest first (cursor pagination)."""
    return await ledger_service.list_entries(
        session, user_id=user.id, account_id=account_id, page=page
    )
