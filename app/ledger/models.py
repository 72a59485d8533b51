"""Ledger transactions and their entries.

Invariants the database itself enforces (see the migrations): entries are never updated or
deleted; the entries of a transaction sum to zero and number at least two (a deferred
constraint trigger, checked at commit); and `ledger_post` (ADR 0021), the one writer, keeps
each account's `balance` equal to the sum of its entries and a user's never below zero.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, one_of
from app.ledger.schemas import LedgerKind


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
    # By table name, as every foreign key is: the ledger posts to accounts, it does not own them.
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
