"""Accounts, ledger transactions and ledger entries.

Invariants the database itself enforces (see the migration): a user account's balance never
goes below zero; entries are never updated or deleted; the entries of a transaction sum to
zero and number at least two (a deferred constraint trigger, checked at commit).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.schemas import AccountKind, LedgerKind
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


class LedgerTransaction(Base):
    """One balanced posting: what moved, and why (`kind`)."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (CheckConstraint(one_of("kind", LedgerKind), name="kind_valid"),)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(Base):
    """One signed amount on one account; append-only."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        # The statement query: one account's entries in time order (scanned backwards too).
        Index("ix_ledger_entries_account_id_created_at_id", "account_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
