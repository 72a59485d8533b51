"""Errors of deposits and the provider's webhooks."""

from __future__ import annotations

from app.core.errors import AppError


class InvalidSignatureError(AppError):
    """A webhook whose signature is missing, malformed, stale or wrong: nothing is read."""

    code = "invalid_signature"
    status_code = 400
    default_detail = "The webhook signature is not valid."
