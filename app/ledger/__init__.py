"""The double-entry ledger: balanced postings, an account's entries, and the invariants' check."""
