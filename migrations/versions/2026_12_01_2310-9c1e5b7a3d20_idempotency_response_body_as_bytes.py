"""Idempotency keys store the response body as the bytes sent, so a replay is byte-for-byte.

JSONB normalises what it stores (key order, spacing), so a replay used to differ from the first
answer. Existing rows are converted from their JSONB text form.

Revision ID: 9c1e5b7a3d20
Revises: a2aeb97db6ca
Create Date: 2026-12-01 23:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c1e5b7a3d20"
down_revision: str | None = "a2aeb97db6ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """JSONB to bytea, keeping each stored body's content."""
    op.execute(
        "ALTER TABLE idempotency_keys ALTER COLUMN response_body TYPE bytea "
        "USING convert_to(response_body::text, 'UTF8')"
    )


def downgrade() -> None:
    """Back from bytea to JSONB (every stored body is JSON)."""
    op.execute(
        "ALTER TABLE idempotency_keys ALTER COLUMN response_body TYPE jsonb "
        "USING convert_from(response_body, 'UTF8')::jsonb"
    )
