"""Errors of payments."""

from __future__ import annotations

from app.core.errors import AppError


class SameAccountError(AppError):
    """Source and destination are the same account."""

    code = "same_account"
    status_code = 422
    default_detail = "The source and destination accounts must differ."
