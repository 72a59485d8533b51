"""Accounts, the double-entry ledger, payments, adjustments and idempotency keys.

Besides the tables, three triggers make the ledger's rules the database's own: entries and
transactions are append-only, and every transaction's entries sum to zero (checked at commit).

Revision ID: 2fd26317f2b3
Revises: 4df9965abf76
Create Date: 2026-11-27 12:18:00.644523+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2fd26317f2b3"
down_revision: str | None = "4df9965abf76"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# asyncpg runs one statement per call, so each is its own string.
APPEND_ONLY = (
    """
    CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger rows are append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    *(
        f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()
        """
        for table in ("ledger_transactions", "ledger_entries")
    ),
    *(
        f"""
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change()
        """
        for table in ("ledger_transactions", "ledger_entries")
    ),
)

# Deferred to COMMIT, when every entry of the transaction has been inserted.
BALANCED = (
    """
    CREATE FUNCTION ledger_check_balanced(tx uuid) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        total numeric;
        entries integer;
    BEGIN
        SELECT coalesce(sum(amount), 0), count(*) INTO total, entries
            FROM ledger_entries WHERE transaction_id = tx;
        IF total <> 0 OR entries < 2 THEN
            RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to %',
                tx, entries, total
                USING ERRCODE = 'check_violation';
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_balanced(NEW.transaction_id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_balanced(NEW.id);
        RETURN NULL;
    END $$
    """,
    *(
        f"""
        CREATE CONSTRAINT TRIGGER {table}_balanced
            AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION {table}_balanced()
        """
        for table in ("ledger_transactions", "ledger_entries")
    ),
)

DROP_TRIGGERS = (
    "DROP TRIGGER ledger_transactions_balanced ON ledger_transactions",
    "DROP TRIGGER ledger_entries_balanced ON ledger_entries",
    "DROP FUNCTION ledger_transactions_balanced()",
    "DROP FUNCTION ledger_entries_balanced()",
    "DROP FUNCTION ledger_check_balanced(uuid)",
    "DROP TRIGGER ledger_entries_no_truncate ON ledger_entries",
    "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
    "DROP TRIGGER ledger_transactions_no_truncate ON ledger_transactions",
    "DROP TRIGGER ledger_transactions_append_only ON ledger_transactions",
    "DROP FUNCTION ledger_forbid_change()",
)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('payment', 'adjustment', 'deposit')",
            name=op.f("ck_ledger_transactions_kind_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=8), server_default="user", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'user') = (user_id IS NOT NULL)", name=op.f("ck_accounts_owner_matches_kind")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_accounts_currency_iso_4217")),
        sa.CheckConstraint(
            "kind = 'system' OR balance >= 0", name=op.f("ck_accounts_user_balance_not_negative")
        ),
        sa.CheckConstraint("kind IN ('user', 'system')", name=op.f("ck_accounts_kind_valid")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_accounts_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(
        "ix_accounts_user_id_created_at_id",
        "accounts",
        ["user_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_accounts_system_currency",
        "accounts",
        ["currency"],
        unique=True,
        postgresql_where=sa.text("kind = 'system'"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint(
            "user_id", "endpoint", "key", name=op.f("uq_idempotency_keys_user_id_endpoint_key")
        ),
    )
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_adjustments_amount_not_zero")),
        sa.CheckConstraint(
            "length(trim(reason)) > 0", name=op.f("ck_adjustments_reason_not_blank")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_adjustments_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_adjustments_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_adjustments_ledger_transaction_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjustments")),
        sa.UniqueConstraint(
            "ledger_transaction_id", name=op.f("uq_adjustments_ledger_transaction_id")
        ),
    )
    op.create_index(op.f("ix_adjustments_account_id"), "adjustments", ["account_id"], unique=False)
    op.create_index(op.f("ix_adjustments_created_by"), "adjustments", ["created_by"], unique=False)
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ledger_entries_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "ix_ledger_entries_account_id_created_at_id",
        "ledger_entries",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ledger_entries_transaction_id"), "ledger_entries", ["transaction_id"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("source_account_id", sa.Uuid(), nullable=False),
        sa.Column("destination_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'succeeded') = (ledger_transaction_id IS NOT NULL)",
            name=op.f("ck_payments_ledger_iff_succeeded"),
        ),
        sa.CheckConstraint(
            "status IN ('succeeded', 'failed')", name=op.f("ck_payments_status_valid")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "source_account_id <> destination_account_id",
            name=op.f("ck_payments_distinct_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_account_id"],
            ["accounts.id"],
            name=op.f("fk_payments_destination_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payments_ledger_transaction_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_payments_owner_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["source_account_id"],
            ["accounts.id"],
            name=op.f("fk_payments_source_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "ledger_transaction_id", name=op.f("uq_payments_ledger_transaction_id")
        ),
    )
    op.create_index(
        op.f("ix_payments_destination_account_id"),
        "payments",
        ["destination_account_id"],
        unique=False,
    )
    op.create_index(
        "ix_payments_owner_id_created_at_id",
        "payments",
        ["owner_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_source_account_id"), "payments", ["source_account_id"], unique=False
    )

    for statement in (*APPEND_ONLY, *BALANCED):
        op.execute(statement)


def downgrade() -> None:
    """Revert this revision."""
    for statement in DROP_TRIGGERS:
        op.execute(statement)
    op.drop_index(op.f("ix_payments_source_account_id"), table_name="payments")
    op.drop_index("ix_payments_owner_id_created_at_id", table_name="payments")
    op.drop_index(op.f("ix_payments_destination_account_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_ledger_entries_transaction_id"), table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_id_created_at_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_adjustments_created_by"), table_name="adjustments")
    op.drop_index(op.f("ix_adjustments_account_id"), table_name="adjustments")
    op.drop_table("adjustments")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(
        "uq_accounts_system_currency",
        table_name="accounts",
        postgresql_where=sa.text("kind = 'system'"),
    )
    op.drop_index("ix_accounts_user_id_created_at_id", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("ledger_transactions")
