"""Why the ledger refuses a posting (the codes `ledger_post` returns, as the API answers them)."""

from __future__ import annotations

from app.core.errors import AppError


class InsufficientFundsError(AppError):
    """The posting would take a user account below zero."""

    code = "insufficient_funds"
    status_code = 409
    default_detail = "The account balance is too low for this amount."


class CurrencyMismatchError(AppError):
    """The accounts (or the amount) are in different currencies."""

    code = "currency_mismatch"
    status_code = 422
    default_detail = "The currencies of the accounts and the amount must be the same."
