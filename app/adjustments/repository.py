"""Queries on adjustments; no business rules."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.adjustments.models import Adjustment


async def add(session: AsyncSession, adjustment: Adjustment) -> Adjustment:
    """Insert an adjustment and load its server-side defaults (RETURNING: no extra query)."""
    session.add(adjustment)
    await session.flush()
    return adjustment
