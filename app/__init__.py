"""fastapi-ledger: a reference wallet / payments ledger service."""

__version__ = "0.1.0"
