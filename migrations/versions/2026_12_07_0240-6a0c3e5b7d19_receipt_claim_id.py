"""A receipt's claim names the attempt that made it.

A worker that claims a receipt and loses the answer to its `COMMIT` (the connection dropped
mid-commit) cannot tell from the row alone whether the claim is its own or another worker's:
before, it gave up, and the receipt was never sent. With the attempt's id on the claim it looks
again: its own claim means nothing was sent yet, so it sends (ADR 0026).

Nullable and without a default: adding it rewrites nothing, and claims made before it have none.

Revision ID: 6a0c3e5b7d19
Revises: d41f7b2c9e08
Create Date: 2026-12-07 02:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a0c3e5b7d19"
down_revision: str | None = "d41f7b2c9e08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("deposit_receipts", sa.Column("claim_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("deposit_receipts", "claim_id")
