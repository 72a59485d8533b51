"""`ledger_post`: a posting in one call — lock in id order, check, write entries and balances.

The shape of pgledger's transfer function (ADR 0021): one round trip instead of a savepoint, a
locking SELECT, three writes and a release, and no rule the database has to trust Python for.
A refusal (unknown account, mixed currencies, insufficient funds) is returned as a code, with
nothing written and the locks kept; malformed legs are a programming error and raise.

Revision ID: 5b8e0c4f7a61
Revises: 9c1e5b7a3d20
Create Date: 2026-12-02 17:20:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b8e0c4f7a61"
down_revision: str | None = "9c1e5b7a3d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_POST = """
CREATE FUNCTION ledger_post(
    p_kind text, p_accounts uuid[], p_amounts bigint[],
    OUT transaction_id uuid, OUT refusal text
) LANGUAGE plpgsql AS $$
DECLARE
    wanted integer;
    found integer;
    currencies integer;
    overdrawn boolean;
BEGIN
    IF cardinality(p_accounts) IS DISTINCT FROM cardinality(p_amounts)
        OR cardinality(p_accounts) < 2
        OR 0 = ANY(p_amounts)
        OR (SELECT sum(amount) FROM unnest(p_amounts) AS amount) <> 0
    THEN
        RAISE EXCEPTION 'a posting needs two or more non-zero legs that sum to zero'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Every posting locks its accounts in id order, so two postings never wait on each
    -- other in a cycle: no deadlock between postings (the sort runs below the row locks).
    PERFORM 1 FROM accounts WHERE id = ANY(p_accounts) ORDER BY id FOR UPDATE;

    -- The rules, on the locked rows: every account known, one currency, and no user
    -- account below zero afterwards (the system account, "the outside world", may be).
    SELECT count(DISTINCT leg.account_id) INTO wanted FROM unnest(p_accounts) AS leg(account_id);
    SELECT count(*), count(DISTINCT a.currency), coalesce(bool_or(
               a.kind = 'user' AND a.balance + moves.delta < 0), false)
        INTO found, currencies, overdrawn
        FROM accounts AS a
        JOIN (SELECT leg.account_id, sum(leg.amount) AS delta
                FROM unnest(p_accounts, p_amounts) AS leg(account_id, amount)
               GROUP BY leg.account_id) AS moves ON moves.account_id = a.id;
    IF found < wanted THEN
        refusal := 'not_found';
        RETURN;
    ELSIF currencies > 1 THEN
        refusal := 'currency_mismatch';
        RETURN;
    ELSIF overdrawn THEN
        refusal := 'insufficient_funds';
        RETURN;
    END IF;

    INSERT INTO ledger_transactions (kind) VALUES (p_kind) RETURNING id INTO transaction_id;
    INSERT INTO ledger_entries (transaction_id, account_id, amount)
        SELECT ledger_post.transaction_id, leg.account_id, leg.amount
          FROM unnest(p_accounts, p_amounts) AS leg(account_id, amount);
    UPDATE accounts AS a
       SET balance = a.balance + moves.delta, updated_at = now()
      FROM (SELECT leg.account_id, sum(leg.amount) AS delta
              FROM unnest(p_accounts, p_amounts) AS leg(account_id, amount)
             GROUP BY leg.account_id) AS moves
     WHERE a.id = moves.account_id;
END $$
"""


def upgrade() -> None:
    """Create the posting function."""
    op.execute(LEDGER_POST)


def downgrade() -> None:
    """Drop the posting function."""
    op.execute("DROP FUNCTION ledger_post(text, uuid[], bigint[])")
