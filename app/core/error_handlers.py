"""Errors over HTTP: the problem response, and the handlers that render every error with it.

The error values and their body live in `app.core.errors` (pure: domain code imports it); this
module is the FastAPI/Starlette side, installed by `create_app`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    AppError,
    FieldError,
    ServiceUnavailableError,
    framework_code,
    problem_body,
    request_id_of_scope,
)
from app.core.logging import get_logger

logger = get_logger(__name__)


def problem_response(
    *,
    status_code: int,
    code: str,
    detail: str,
    request_id: str | None,
    fields: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    oauth2: bool = False,
) -> JSONResponse:
    """Render one error in the project's shape (`oauth2`: with a token endpoint's extra field)."""
    body = problem_body(
        status_code=status_code,
        code=code,
        detail=detail,
        request_id=request_id,
        fields=fields,
        oauth2=oauth2,
    )
    response_headers = dict(headers or {})
    if request_id:
        response_headers["X-Request-ID"] = request_id
    return JSONResponse(
        body, status_code=status_code, headers=response_headers, media_type=PROBLEM_MEDIA_TYPE
    )


def internal_error_response(request_id: str | None) -> JSONResponse:
    """The 500 answer: a fixed message, never the exception text, a traceback or SQL."""
    return problem_response(
        status_code=500,
        code="internal_error",
        detail="An unexpected error occurred. Quote the request id when reporting it.",
        request_id=request_id,
    )


def request_id_of(request: Request) -> str | None:
    """The id the request-context middleware gave this request."""
    return request_id_of_scope(request.scope)


def app_error_response(
    error: AppError, *, request_id: str | None, oauth2: bool = False
) -> JSONResponse:
    """Render an AppError (also used by middleware, which runs outside the handlers)."""
    return problem_response(
        status_code=error.status_code,
        code=error.code,
        detail=error.detail,
        request_id=request_id,
        fields=error.fields,
        headers=error.headers,
        oauth2=oauth2,
    )


# The OAuth2 token endpoints (`install_error_handlers`): their errors also carry
# `error_description`, which OAuth2 clients show where they would otherwise show only the code.
_OAUTH2_ENDPOINTS = "oauth2_endpoint_paths"


def _at_token_endpoint(request: Request) -> bool:
    return request.url.path in getattr(request.app.state, _OAUTH2_ENDPOINTS, ())


async def _handle_app_error(request: Request, exc: AppError) -> JSONResponse:
    return app_error_response(
        exc, request_id=request_id_of(request), oauth2=_at_token_endpoint(request)
    )


def _location(loc: Sequence[Any]) -> list[str]:
    # Inside a union (`X | None`), pydantic appends the member's tag to the location, e.g.
    # `query.created_after.function-after[...]`; a client wants the field, not our validators.
    return [str(part) for part in loc if not (isinstance(part, str) and "[" in part)]


def _reasons(errors: Sequence[Any]) -> list[Any]:
    """Drop the "should be None" of an optional field whose value failed for a real reason.

    A string that breaks `Text | None` fails both members; only the string's reason helps.
    """
    located = [tuple(_location(error.get("loc", ()))) for error in errors]
    return [
        error
        for error, loc in zip(errors, located, strict=True)
        if not (
            error.get("type") == "none_required"
            and loc[-1:] == ("none",)
            and any(other[: len(loc) - 1] == loc[:-1] and other != loc for other in located)
        )
    ]


def _field_errors(errors: Sequence[Any]) -> list[FieldError]:
    # The input value is deliberately left out: it may be a password or a card number.
    fields = [
        FieldError(
            field=".".join(_location(error.get("loc", ()))) or "request",
            message=str(error.get("msg", "invalid")),
            type=str(error.get("type", "value_error")),
        )
        for error in _reasons(errors)
    ]
    # A model used by two dependencies (the login form and its rate limit) reports twice.
    unique = {(f.field, f.message, f.type): f for f in fields}
    return list(unique.values())


async def _handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = _field_errors(exc.errors())
    return problem_response(
        status_code=422,
        code="validation_error",
        detail="The request is not valid: see `fields`.",
        request_id=request_id_of(request),
        fields=fields,
        oauth2=_at_token_endpoint(request),
    )


# FastAPI answers a body it cannot even decode (bad bytes) with this 400; we treat it like
# any other unreadable body: 422 validation_error, so clients see one rule for bad input.
_UNPARSABLE_BODY = "There was an error parsing the body"


def _allowed_methods(request: Request) -> str | None:
    """Every method the path supports, read from the OpenAPI document.

    FastAPI keeps one route per method, and Starlette's 405 names only the first route's.
    """
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods.update(method.upper() for method in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


async def _handle_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return problem_response(
            status_code=422,
            code="validation_error",
            detail="The request body could not be decoded.",
            request_id=request_id_of(request),
            fields=[FieldError(field="body", message="Unreadable body.", type="body_unparsable")],
        )
    status_code = exc.status_code
    code = framework_code(status_code)
    phrase = HTTPStatus(status_code).phrase
    # Starlette's default detail is just the status phrase; say something more useful.
    detail = exc.detail if exc.detail and exc.detail != phrase else _default_detail(status_code)
    headers = dict(exc.headers or {})
    if status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return problem_response(
        status_code=status_code,
        code=code,
        detail=detail,
        request_id=request_id_of(request),
        headers=headers,
    )


def _default_detail(status_code: int) -> str:
    if status_code == 404:
        return "No resource at this path."
    if status_code == 405:
        return "This method is not allowed on this path; see the Allow header."
    return HTTPStatus(status_code).description or HTTPStatus(status_code).phrase


async def _handle_pool_timeout(request: Request, exc: PoolTimeoutError) -> JSONResponse:
    # Every pooled connection stayed busy for DB_POOL_TIMEOUT_SECONDS: the service is
    # saturated, not broken. A 503 with Retry-After tells clients (and proxies) to back off.
    logger.warning("db_pool_exhausted", path=request.url.path)
    return app_error_response(
        ServiceUnavailableError(
            "The service is busy. Retry after the time given in Retry-After.",
            headers={"Retry-After": "1"},
        ),
        request_id=request_id_of(request),
    )


# PostgreSQL's "deadlock detected" and "could not serialize access": the transaction was rolled
# back whole (no idempotency record either), so the same request may simply be sent again.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


async def _handle_database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    # A lost connection (the server restarted, a failover, pg_terminate_backend): SQLAlchemy has
    # already thrown the pool's older connections away, and the request's transaction did not
    # commit, or committed with its idempotency record, so a retry with the same key is safe.
    # An outage for a moment, not a crash: 503 with Retry-After.
    if exc.connection_invalidated:
        logger.warning("db_connection_lost", path=request.url.path)
        return app_error_response(
            ServiceUnavailableError(
                "The connection to the database was lost. Retry the request (with the same "
                "Idempotency-Key where one is needed: it is never carried out twice).",
                headers={"Retry-After": "1"},
            ),
            request_id=request_id_of(request),
        )
    # Postings lock in id order and run at READ COMMITTED, so neither should happen; if one
    # does, it is a conflict to retry (503), not a crash. Anything else stays a crash (500).
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate not in _TRANSIENT_SQLSTATES:
        raise exc
    logger.warning("db_transient_conflict", path=request.url.path, sqlstate=sqlstate)
    return app_error_response(
        ServiceUnavailableError(
            "A conflicting update got in the way; nothing was done. Retry the request.",
            headers={"Retry-After": "1"},
        ),
        request_id=request_id_of(request),
    )


def install_error_handlers(
    app: FastAPI, *, oauth2_token_paths: frozenset[str] = frozenset()
) -> None:
    """Register the handlers; unhandled exceptions are caught by the request-context middleware.

    Errors of the routes at `oauth2_token_paths` carry RFC 6749's `error_description` too.
    """
    setattr(app.state, _OAUTH2_ENDPOINTS, oauth2_token_paths)
    app.exception_handler(AppError)(_handle_app_error)
    app.exception_handler(PoolTimeoutError)(_handle_pool_timeout)
    app.exception_handler(DBAPIError)(_handle_database_error)
    app.exception_handler(RequestValidationError)(_handle_validation_error)
    app.exception_handler(StarletteHTTPException)(_handle_http_exception)
