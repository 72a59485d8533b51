"""Errors of the auth module. Every 401 carries `WWW-Authenticate: Bearer` (RFC 6750)."""

from __future__ import annotations

from app.core.errors import AppError

_BEARER = {"WWW-Authenticate": "Bearer"}
_BEARER_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class _UnauthorizedError(AppError):
    status_code = 401
    default_headers = _BEARER_INVALID


class NotAuthenticatedError(AppError):
    """No credentials were sent."""

    code = "not_authenticated"
    status_code = 401
    default_detail = "Authentication required: send 'Authorization: Bearer <access token>'."
    default_headers = _BEARER


class InvalidCredentialsError(AppError):
    """Wrong email or password — deliberately the same answer for both."""

    code = "invalid_credentials"
    status_code = 401
    default_detail = "Incorrect email or password."
    default_headers = _BEARER


class InvalidTokenError(_UnauthorizedError):
    """The token is malformed, forged, revoked, of the wrong type, or its user is gone."""

    code = "invalid_token"
    default_detail = "The token is invalid or has been revoked."


class TokenExpiredError(_UnauthorizedError):
    """The token has expired; refresh it or sign in again."""

    code = "token_expired"
    default_detail = "The token has expired."


class RefreshTokenReusedError(_UnauthorizedError):
    """A rotated refresh token came back: its family is revoked (committed before the raise)."""

    code = "refresh_token_reused"
    default_detail = "This refresh token was already used; every session of this login is revoked."


class ForbiddenError(AppError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
    status_code = 403
    default_detail = "You are not allowed to perform this action."
