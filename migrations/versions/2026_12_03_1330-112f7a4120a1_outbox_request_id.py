"""The outbox records the id of the request that enqueued each task, for the worker's logs.

Nullable and without a default: adding it rewrites nothing, and tasks recorded outside a
request (the sweeper's) have none.

Revision ID: 112f7a4120a1
Revises: b738341c4c32
Create Date: 2026-12-03 13:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "112f7a4120a1"
down_revision: str | None = "b738341c4c32"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("task_outbox", sa.Column("request_id", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("task_outbox", "request_id")
