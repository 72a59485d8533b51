"""Cache invalidations Redis missed, kept until every process can re-apply them (ADR 0016).

Revision ID: a2aeb97db6ca
Revises: 2fd26317f2b3
Create Date: 2026-12-01 22:46:20.297895+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a2aeb97db6ca"
down_revision: str | None = "2fd26317f2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "cache_invalidations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_invalidations")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("cache_invalidations")
