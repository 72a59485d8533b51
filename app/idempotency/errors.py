"""Errors of the Idempotency-Key protocol."""

from __future__ import annotations

from app.core.errors import AppError


class IdempotencyKeyMissingError(AppError):
    """The endpoint requires an Idempotency-Key header."""

    code = "idempotency_key_missing"
    status_code = 400
    default_detail = "This endpoint requires an Idempotency-Key header (e.g. a UUID)."


class IdempotencyKeyInvalidError(AppError):
    """The header is empty, too long or has characters outside visible ASCII."""

    code = "idempotency_key_invalid"
    status_code = 400
    default_detail = "The Idempotency-Key must be 1 to 255 visible ASCII characters."


class IdempotencyKeyReusedError(AppError):
    """The key was already used with a different request."""

    code = "idempotency_key_reused"
    status_code = 422
    default_detail = "This Idempotency-Key was already used with a different request."


class IdempotencyKeyInProgressError(AppError):
    """The first request with this key is still running."""

    code = "idempotency_key_in_progress"
    status_code = 409
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."
