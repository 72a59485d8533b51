"""Accounts: wallets in one currency, a user's or the per-currency system account.

Invariants the database itself enforces (see the migrations): a user account's balance never
goes below zero; a system account is one per currency and belongs to no one. The balance is
written only by the ledger's `ledger_post` (app/ledger/), which keeps it equal to the sum of
the account's entries.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.schemas import AccountKind
from app.core.db import Base, TimestampMixin, one_of


class Account(TimestampMixin, Base):
    """A wallet in one currency. `balance` is a cache of the sum of its entries, kept in step."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        CheckConstraint(one_of("kind", AccountKind), name="kind_valid"),
        # User accounts belong to a user; the per-currency system account to no one.
        CheckConstraint(
            f"(kind = '{AccountKind.USER}') = (user_id IS NOT NULL)", name="owner_matches_kind"
        ),
        # Only the system account ("the outside world") may go negative.
        CheckConstraint(
            f"kind = '{AccountKind.SYSTEM}' OR balance >= 0", name="user_balance_not_negative"
        ),
        Index(
            "uq_accounts_system_currency",
            "currency",
            unique=True,
            postgresql_where=text(f"kind = '{AccountKind.SYSTEM}'"),
        ),
        Index("ix_accounts_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(
        String(8), default=AccountKind.USER, server_default=AccountKind.USER
    )
    currency: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(100))
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
