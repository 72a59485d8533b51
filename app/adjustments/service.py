"""Use cases of adjustments. Never commits: the request's transaction does."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.accounts.schemas import AccountCreate, Leg
from app.adjustments import repository
from app.adjustments.models import Adjustment
from app.adjustments.schemas import AdjustmentCreate, AdjustmentRead
from app.core.config import Environment, get_settings
from app.core.errors import NotFoundError, Refusal
from app.core.logging import get_logger
from app.core.pagination import PageParams
from app.users import service as users_service

logger = get_logger(__name__)
DEMO_FUNDING = 100_000  # 1,000.00 in a two-decimal currency


async def create_adjustment(
    session: AsyncSession, *, admin_id: uuid.UUID, account_id: uuid.UUID, data: AdjustmentCreate
) -> AdjustmentRead:
    """Post `amount` to a user account against the system account; debits need the funds."""
    account = await accounts_service.get_account_ref(session, account_id=account_id)
    if account is None or account.kind != "user":
        raise NotFoundError("No such account.")
    system_id = await accounts_service.system_account_id(session, currency=account.currency)
    posted = await accounts_service.post_transaction(
        session,
        kind="adjustment",
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


async def seed_demo_funding(session: AsyncSession) -> str:
    """Give the demo user a funded account (outside production, once)."""
    settings = get_settings()
    if settings.ENVIRONMENT is Environment.PRODUCTION:
        return "demo funding skipped (production)"
    demo = await users_service.get_credentials(session, email=settings.DEMO_USER_EMAIL)
    admin = await users_service.get_credentials(session, email=settings.FIRST_ADMIN_EMAIL)
    if demo is None or admin is None:
        return "demo funding skipped (run the admin and demo user steps first)"
    existing = await accounts_service.list_accounts(
        session, user_id=demo.id, page=PageParams(limit=1, after=None)
    )
    if existing.items:
        return "demo account already exists"
    currency = settings.SUPPORTED_CURRENCIES[0]
    account = await accounts_service.open_account(
        session, user_id=demo.id, data=AccountCreate(currency=currency, name="Demo wallet")
    )
    await create_adjustment(
        session,
        admin_id=admin.id,
        account_id=account.id,
        data=AdjustmentCreate(amount=DEMO_FUNDING, reason="Demo funding (seed)"),
    )
    return f"demo account funded with {DEMO_FUNDING} minor units of {currency}"
