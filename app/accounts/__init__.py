"""Accounts and the double-entry ledger: balances in minor units, append-only entries."""
