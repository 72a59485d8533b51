"""HTTP endpoints of the caller's own accounts (their statements are the ledger's)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.accounts import service as accounts_service
from app.accounts.schemas import AccountCreate, AccountList, AccountRead
from app.auth.dependencies import CurrentUser
from app.core.dependencies import CacheDep, PageParamsDep, SessionDep
from app.core.openapi import error_responses

router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="open_account",
    responses=error_responses(401, 422),
)
async def open_account(data: AccountCreate, user: CurrentUser, session: SessionDep) -> AccountRead:
    """Open an account in a supported currency, with a zero balance."""
    return await accounts_service.open_account(session, user_id=user.id, data=data)


@router.get("", operation_id="list_accounts", responses=error_responses(401, 422))
async def list_accounts(user: CurrentUser, session: SessionDep, page: PageParamsDep) -> AccountList:
    """Your accounts, newest first (cursor pagination)."""
    return await accounts_service.list_accounts(session, user_id=user.id, page=page)


@router.get("/{account_id}", operation_id="read_account", responses=error_responses(401, 404, 422))
async def read_account(
    account_id: uuid.UUID, user: CurrentUser, session: SessionDep, cache: CacheDep
) -> AccountRead:
    """One of your accounts, with its balance in minor units (cached; fresh after every write)."""
    return await accounts_service.get_account(
        session, user_id=user.id, account_id=account_id, cache=cache
    )
