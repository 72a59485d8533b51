"""Request context middleware: request id, security headers, access log, the last-resort 500.

It is a pure ASGI middleware (no BaseHTTPMiddleware) so it adds little latency and does not
break streaming or background tasks. It is the outermost layer: every answer, its own 500 too,
passes through its `send` wrapper, which stamps the request id and the security headers
(`app.core.http_headers.SecurityHeaders`) in one go.
"""

from __future__ import annotations

import os
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import internal_error_response
from app.core.http_headers import SecurityHeaders, add_missing_headers
from app.core.logging import get_logger
from app.core.sentry import report

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is reused only when it is short and harmless in logs and headers.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")

_access_log = get_logger("app.access")
_error_log = get_logger("app.error")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    """Give every request an id, log one access line, and turn a crash into a clean 500.

    Every answer also carries the security headers (an endpoint's own values win).
    """

    def __init__(self, app: ASGIApp, *, security_headers: SecurityHeaders) -> None:
        self.app = app
        self.security_headers = security_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; non-HTTP scopes pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID (~2 µs).
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        status_code = 500
        response_started = False
        stamped: tuple[tuple[bytes, bytes], ...] = (
            (REQUEST_ID_HEADER, request_id.encode("latin-1")),
        )
        security = self.security_headers.for_path(scope["path"])

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                # Read at answer time: the trusted-proxy middleware may have set the scheme.
                https = scope.get("scheme") == "https"
                add_missing_headers(message, (*stamped, *security[https]))
            await send(message)

        started = time.perf_counter()
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_headers)
            if not response_started:
                status_code = 499  # nginx's "client closed request": abandoned, unanswered
        except Exception as error:
            _error_log.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            report(error)  # the 500 answered here never reaches Sentry's own middleware
            if response_started:
                raise  # Too late for a clean answer: let the server drop the connection.
            status_code = 500
            await internal_error_response(request_id)(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            _access_log.info(
                "request",
                method=scope["method"],
                route=getattr(route, "path", None),
                path=scope["path"],
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                client=(scope.get("client") or (None,))[0],
            )
            structlog.contextvars.reset_contextvars(**tokens)
