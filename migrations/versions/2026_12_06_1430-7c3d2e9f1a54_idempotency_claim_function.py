"""`idempotency_claim`: a key's lock and its stored outcome in one round trip.

Before, a request with an `Idempotency-Key` took the key's advisory lock in one statement and
read the stored outcome in a second (issue 14: each round trip is ~5 % of a payment's CPU). One
statement could not do both: its snapshot would be taken before the lock, and miss an outcome
that the lock's previous holder committed in between. A VOLATILE PL/pgSQL function can: at READ
COMMITTED each query inside it takes a fresh snapshot, so its SELECT, run once the lock is held,
sees everything committed before the lock was granted.

Revision ID: 7c3d2e9f1a54
Revises: 112f7a4120a1
Create Date: 2026-12-06 14:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c3d2e9f1a54"
down_revision: str | None = "112f7a4120a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDEMPOTENCY_CLAIM = """
CREATE FUNCTION idempotency_claim(
    p_lock text, p_user_id uuid, p_endpoint text, p_key text,
    OUT locked boolean, OUT record_id uuid, OUT fingerprint text,
    OUT response_status integer, OUT response_body bytea, OUT expires_at timestamptz
) VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    -- Transaction-scoped: released at commit or rollback, or when the connection dies.
    locked := pg_try_advisory_xact_lock(hashtextextended(p_lock, 0));
    IF NOT locked THEN
        RETURN;
    END IF;
    -- A query of its own, after the lock: a fresh snapshot (see the module docstring).
    SELECT k.id, k.fingerprint, k.response_status, k.response_body, k.expires_at
      INTO record_id, fingerprint, response_status, response_body, expires_at
      FROM idempotency_keys AS k
     WHERE k.user_id = p_user_id AND k.endpoint = p_endpoint AND k.key = p_key;
END $$
"""


def upgrade() -> None:
    """Create the claim function."""
    op.execute(IDEMPOTENCY_CLAIM)


def downgrade() -> None:
    """Drop the claim function."""
    op.execute("DROP FUNCTION idempotency_claim(text, uuid, text, text)")
