"""Errors are values with codes: one base class and one shape everywhere (no HTTP here).

Every error leaves the service as `{"error", "detail", "request_id", ...}`, which is also an
RFC 9457 problem document (`type`, `title`, `status`; `application/problem+json`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from app.core.config import get_settings

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Codes for errors raised by the framework itself rather than by an AppError: Starlette's,
# and the HTTP protocol's (app.core.http_protocol), which answers before the app is called.
_FRAMEWORK_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}
_GENERIC_CODE = "http_error"

_registry: dict[str, type[AppError]] = {}
_APP_PACKAGE = __name__.split(".", 1)[0]


class FieldError(BaseModel):
    """One failed constraint of a validated request."""

    field: str = Field(description="Dotted location: body.email, query.limit, path.id …")
    message: str
    type: str = Field(description="Machine-readable reason, e.g. missing, string_too_short.")


class Problem(BaseModel):
    """The one error body of the API (RFC 9457 problem details + a stable code)."""

    type: str = Field(description="URI reference naming the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code of this response.")
    error: str = Field(description="Stable snake_case code for programs to branch on.")
    detail: str = Field(description="Human-readable explanation of this occurrence.")
    # Absent rather than null when unset: SkipJsonSchema keeps `null` out of the contract.
    request_id: str | SkipJsonSchema[None] = Field(
        default=None, description="Correlates with the X-Request-ID header and the logs."
    )
    fields: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None, description="Each failed constraint (validation errors only)."
    )
    error_description: str | SkipJsonSchema[None] = Field(
        default=None,
        description="On the token endpoint only: `detail` again, under the name OAuth2 "
        "clients (Swagger UI's Authorize among them) show (RFC 6749 §5.2).",
    )


class AppError(Exception):
    """Base of every expected error; subclasses set a stable `code` and HTTP `status_code`.

    Raised, an AppError means "nothing happened": the request's transaction rolls back. A
    business outcome that is refused *and* recorded (a failed payment) is not raised: it is
    returned as a `Refusal` value, and commits like any other result.
    """

    code: ClassVar[str] = "internal_error"
    status_code: ClassVar[int] = 500
    default_detail: ClassVar[str] = "An unexpected error occurred."
    # Headers every answer of this error carries (e.g. WWW-Authenticate on a 401); `headers`
    # given when raising are added to these.
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        fields: Sequence[FieldError] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers = {**self.default_headers, **(headers or {})}
        self.fields = list(fields) if fields is not None else None
        super().__init__(self.detail)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # an intermediate base (e.g. "every 401"): only concrete codes register
        existing = _registry.get(cls.code)
        if existing is not None and existing.status_code != cls.status_code:
            raise TypeError(f"error code {cls.code!r} already used with another status")
        if cls.__module__.startswith(_APP_PACKAGE + "."):
            # Only the application's own errors are part of the contract (not tests' probes).
            _registry.setdefault(cls.code, cls)


@dataclass(frozen=True)
class Refusal:
    """A business outcome that answers with `error` yet keeps what it wrote (a failed payment).

    Returned, never raised: whoever returns it has written the record of the refusal, and the
    transaction commits it. The idempotency layer stores it and answers with the error.
    """

    error: AppError


class NotFoundError(AppError):
    """The resource does not exist, or belongs to someone else (never confirm which)."""

    code = "not_found"
    status_code = 404
    default_detail = "The requested resource was not found."


class ValidationFailedError(AppError):
    """Input passed the schema but broke a rule; carries `fields` like schema failures."""

    code = "validation_error"
    status_code = 422
    default_detail = "The request is not valid."


class RateLimitedError(AppError):
    """Too many requests; the rate limiter adds Retry-After and X-RateLimit-* headers."""

    code = "rate_limited"
    status_code = 429
    default_detail = "Too many requests. Retry after the time given in Retry-After."


class ServiceUnavailableError(AppError):
    """A dependency (database, Redis) is unreachable, or the process is draining."""

    code = "service_unavailable"
    status_code = 503
    default_detail = "The service is temporarily unavailable."


def framework_code(status_code: int) -> str:
    """The code of an error with this status that the framework or the server raises itself."""
    return _FRAMEWORK_CODES.get(status_code, _GENERIC_CODE)


def all_error_codes() -> list[str]:
    """Every code the API can answer with: the framework's and each AppError subclass's."""
    return sorted(set(_FRAMEWORK_CODES.values()) | {_GENERIC_CODE} | set(_registry))


# RFC 9110's names, which Python adopted only in 3.13: the same title on every interpreter.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem_body(
    *,
    status_code: int,
    code: str,
    detail: str,
    request_id: str | None,
    fields: Sequence[FieldError] | None = None,
    oauth2: bool = False,
) -> dict[str, Any]:
    """The JSON body of one error in the project's shape (`oauth2`: as a token endpoint's)."""
    return Problem(
        type=f"{get_settings().PROBLEM_TYPE_PREFIX}{code}",
        title=_TITLES.get(status_code) or HTTPStatus(status_code).phrase,
        status=status_code,
        error=code,
        detail=detail,
        request_id=request_id,
        fields=list(fields) if fields is not None else None,
        error_description=detail if oauth2 else None,
    ).model_dump(mode="json", exclude_none=True)


def app_error_body(error: AppError, *, request_id: str | None) -> dict[str, Any]:
    """The JSON body an AppError is rendered as."""
    return problem_body(
        status_code=error.status_code,
        code=error.code,
        detail=error.detail,
        request_id=request_id,
        fields=error.fields,
    )


def request_id_of_scope(scope: Mapping[str, Any]) -> str | None:
    """The request id, from an ASGI scope (for middleware that has no Request)."""
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None
