"""Payments: transfers between accounts of the same currency, idempotent, posted atomically."""
