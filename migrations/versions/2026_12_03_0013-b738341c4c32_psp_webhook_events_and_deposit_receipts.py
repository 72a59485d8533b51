"""Provider webhook events (deduplicated by their id) and deposit receipts (claimed once).

An event's id is its primary key, inserted with the event's effect: a redelivery conflicts and
does nothing. A receipt row is claimed before the email is sent: at most one per deposit; the
sweeper finds recent successes without one by a partial index.

Revision ID: b738341c4c32
Revises: 2e825079d54e
Create Date: 2026-12-03 00:13:05.390754+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b738341c4c32"
down_revision: str | None = "2e825079d54e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "deposit_receipts",
        sa.Column("deposit_id", sa.Uuid(), nullable=False),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deposit_id"],
            ["deposits.id"],
            name=op.f("fk_deposit_receipts_deposit_id_deposits"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("deposit_id", name=op.f("pk_deposit_receipts")),
    )
    op.create_table(
        "psp_webhook_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("deposit_id", sa.Uuid(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["deposit_id"],
            ["deposits.id"],
            name=op.f("fk_psp_webhook_events_deposit_id_deposits"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "type IN ('charge.succeeded', 'charge.failed')",
            name=op.f("ck_psp_webhook_events_type_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psp_webhook_events")),
    )
    op.create_index(
        op.f("ix_psp_webhook_events_deposit_id"), "psp_webhook_events", ["deposit_id"], unique=False
    )
    op.create_index(
        "ix_deposits_succeeded_updated_at",
        "deposits",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'succeeded'"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_deposits_succeeded_updated_at",
        table_name="deposits",
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.drop_index(op.f("ix_psp_webhook_events_deposit_id"), table_name="psp_webhook_events")
    op.drop_table("psp_webhook_events")
    op.drop_table("deposit_receipts")
