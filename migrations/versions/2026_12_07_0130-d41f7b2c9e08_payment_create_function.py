"""`payment_create`: a payment's checks, its posting and its record in one round trip.

Before, a payment read its two accounts (owner, kind, currency), then called `ledger_post`, then
inserted the payment row: three round trips, and on this machine each round trip inside a
request is the largest single cost of a payment (issue 14, `docs/performance.md`). This function
does the three in one call and returns what Python needs to answer:

- `invalid`: the request names no usable account or the wrong currency (`source_not_found`,
  `destination_not_found`, `currency_mismatch`); nothing was written or locked.
- `refusal`: `ledger_post` refused (`insufficient_funds`, or an account that changed under it);
  the payment is recorded as failed with that code, and the accounts stay locked.
- otherwise the posting's `ledger_transaction_id`; and for both recorded outcomes the payment's
  `created_at`.

The rules of money stay `ledger_post`'s (ADR 0021); this adds only what a payment asks of its
accounts, the same checks the service made in Python, on the same columns.

Revision ID: d41f7b2c9e08
Revises: 7c3d2e9f1a54
Create Date: 2026-12-07 01:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d41f7b2c9e08"
down_revision: str | None = "7c3d2e9f1a54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_CREATE = """
CREATE FUNCTION payment_create(
    p_id uuid, p_owner_id uuid, p_source uuid, p_destination uuid, p_amount bigint,
    p_currency text, p_description text,
    OUT invalid text, OUT refusal text, OUT ledger_transaction_id uuid, OUT created_at timestamptz
) VOLATILE LANGUAGE plpgsql AS $$
DECLARE
    source_owner uuid;
    source_currency text;
    destination_kind text;
    destination_currency text;
BEGIN
    -- What the payment asks of its accounts (owner, kind and currency never change): read
    -- without locks, as the service did; ledger_post locks both and checks them again.
    SELECT a.user_id, a.currency INTO source_owner, source_currency
      FROM accounts AS a WHERE a.id = p_source;
    IF NOT FOUND OR source_owner IS DISTINCT FROM p_owner_id THEN
        invalid := 'source_not_found';
        RETURN;
    END IF;
    SELECT a.kind, a.currency INTO destination_kind, destination_currency
      FROM accounts AS a WHERE a.id = p_destination;
    IF NOT FOUND OR destination_kind <> 'user' THEN
        invalid := 'destination_not_found';
        RETURN;
    END IF;
    IF source_currency <> p_currency OR destination_currency <> p_currency THEN
        invalid := 'currency_mismatch';
        RETURN;
    END IF;

    SELECT posted.transaction_id, posted.refusal INTO ledger_transaction_id, refusal
      FROM ledger_post('payment', ARRAY[p_source, p_destination], ARRAY[-p_amount, p_amount])
           AS posted;

    -- A refused attempt is recorded too (its accounts still locked by ledger_post).
    INSERT INTO payments (id, owner_id, source_account_id, destination_account_id, amount,
                          description, status, failure_code, ledger_transaction_id)
    VALUES (p_id, p_owner_id, p_source, p_destination, p_amount, p_description,
            CASE WHEN refusal IS NULL THEN 'succeeded' ELSE 'failed' END, refusal,
            payment_create.ledger_transaction_id)
    RETURNING payments.created_at INTO payment_create.created_at;
END $$
"""


def upgrade() -> None:
    """Create the payment function."""
    op.execute(PAYMENT_CREATE)


def downgrade() -> None:
    """Drop the payment function."""
    op.execute("DROP FUNCTION payment_create(uuid, uuid, uuid, uuid, bigint, text, text)")
