"""`python -m app.cli seed`: the first admin and, outside production, a funded demo user.

Every step is idempotent and says what it did; the CLI runs them in one transaction, in this
order (the admin first: the demo funding is an adjustment made by the admin). They go through
the modules' public services, as any other caller does: seeding is a use of the domain, not a
part of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts_service
from app.accounts.schemas import AccountCreate
from app.adjustments import service as adjustments_service
from app.adjustments.schemas import AdjustmentCreate
from app.core.config import Environment, Settings
from app.core.pagination import PageParams
from app.core.security import PasswordHasher
from app.users import service as users_service
from app.users.schemas import Role

DEMO_FUNDING = 100_000  # 1,000.00 in a two-decimal currency

SeedStep = Callable[[AsyncSession, Settings, PasswordHasher], Awaitable[str]]


async def seed_admin(session: AsyncSession, settings: Settings, hasher: PasswordHasher) -> str:
    """Create the admin from FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD, once."""
    email = users_service.normalize_email(settings.FIRST_ADMIN_EMAIL)
    existing = await users_service.get_credentials(session, email=email)
    if existing is not None:
        await users_service.promote_to_admin(session, user_id=existing.id)
        return f"admin {email} already exists"
    password_hash = await hasher.hash(settings.FIRST_ADMIN_PASSWORD.get_secret_value())
    await users_service.create_user(
        session,
        email=email,
        password_hash=password_hash,
        full_name="Administrator",
        role=Role.ADMIN,
    )
    return f"admin {email} created"


async def seed_demo_user(session: AsyncSession, settings: Settings, hasher: PasswordHasher) -> str:
    """Create the demo user (DEMO_USER_EMAIL / DEMO_USER_PASSWORD), never in production."""
    if settings.ENVIRONMENT is Environment.PRODUCTION:
        return "demo user skipped (production)"
    email = users_service.normalize_email(settings.DEMO_USER_EMAIL)
    if await users_service.get_credentials(session, email=email) is not None:
        return f"demo user {email} already exists"
    password_hash = await hasher.hash(settings.DEMO_USER_PASSWORD.get_secret_value())
    await users_service.create_user(
        session, email=email, password_hash=password_hash, full_name="Demo User"
    )
    return f"demo user {email} created"


async def seed_demo_funding(
    session: AsyncSession, settings: Settings, _hasher: PasswordHasher
) -> str:
    """Give the demo user a funded account (outside production, once)."""
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
    await adjustments_service.create_adjustment(
        session,
        admin_id=admin.id,
        account_id=account.id,
        data=AdjustmentCreate(amount=DEMO_FUNDING, reason="Demo funding (seed)"),
    )
    return f"demo account funded with {DEMO_FUNDING} minor units of {currency}"


STEPS: list[SeedStep] = [seed_admin, seed_demo_user, seed_demo_funding]
