"""Errors of the users module."""

from __future__ import annotations

from app.core.errors import AppError


class EmailTakenError(AppError):
    """Another account already uses this email (compared case-insensitively)."""

    code = "email_taken"
    status_code = 409
    default_detail = "An account with this email already exists."
