"""The deposits table: a top-up from a card, pending until the provider has answered."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, one_of
from app.deposits.schemas import DepositStatus


class Deposit(Base):
    """A top-up. Its currency is the account's (3NF: not stored twice)."""

    __tablename__ = "deposits"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            one_of("status", DepositStatus),
            name="status_valid",
        ),
        # Credited exactly when succeeded; a failure says why; a pending one has neither.
        CheckConstraint(
            f"(status = '{DepositStatus.SUCCEEDED}') = (ledger_transaction_id IS NOT NULL)",
            name="ledger_iff_succeeded",
        ),
        CheckConstraint(
            f"(status = '{DepositStatus.FAILED}') = (failure_code IS NOT NULL)",
            name="failure_code_iff_failed",
        ),
        # The owner's deposits, newest first.
        Index(
            "ix_deposits_owner_id_created_at_id",
            "owner_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        # The sweeper's question: which deposits are still pending, oldest first.
        Index(
            "ix_deposits_pending_updated_at",
            "updated_at",
            postgresql_where=text(f"status = '{DepositStatus.PENDING}'"),
        ),
        # The sweeper's other question: which recent successes still lack a receipt.
        Index(
            "ix_deposits_succeeded_updated_at",
            "updated_at",
            postgresql_where=text(f"status = '{DepositStatus.SUCCEEDED}'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default=DepositStatus.PENDING)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    ledger_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class WebhookEvent(Base):
    """A provider event already applied: its id's UNIQUE key makes a redelivery a no-op.

    Inserted in the same transaction as the event's effect, so an event is either applied and
    recorded, or neither (a failed request leaves nothing, and the provider's retry applies it).
    """

    __tablename__ = "psp_webhook_events"
    __table_args__ = (
        CheckConstraint("type IN ('charge.succeeded', 'charge.failed')", name="type_valid"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    deposit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deposits.id", ondelete="RESTRICT"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DepositReceipt(Base):
    """The receipt email of a succeeded deposit: claimed before it is sent, so at most one.

    `sent_at` NULL with an old `claimed_at` is a receipt whose worker died between the claim
    and the server's acceptance: not sent, and never sent twice (the trade-off, ADR 0026).
    """

    __tablename__ = "deposit_receipts"

    deposit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deposits.id", ondelete="RESTRICT"), primary_key=True
    )
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The attempt that claimed it: a worker that lost its COMMIT's answer recognises its own claim.
    claim_id: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
