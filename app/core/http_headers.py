"""Response headers every answer carries, HEAD for every GET, and CORS refusals in the error shape.

Pure ASGI middleware (see `create_app` for their order):

- `SecurityHeaders` (stamped by the request-context middleware, not a layer of its own):
  `X-Content-Type-Options`, frame protection, `Referrer-Policy`, a Content-Security-Policy
  (strict for the API; one that lets Swagger UI and ReDoc load on the docs pages), HSTS when the
  request came over HTTPS, and `Cache-Control: no-store` on every API answer — they are
  per-user data or errors, never something a shared cache may keep.
- `HeadAsGetMiddleware`: FastAPI registers GET routes for GET only; RFC 9110 §9.3.2 wants HEAD
  wherever GET is. The request runs as a GET and the body is dropped, headers kept.
- `ProblemCORSMiddleware`: Starlette's CORS middleware, with a refused preflight answered as a
  400 problem document instead of plain text.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import app_error_response
from app.core.errors import AppError

# Nothing on the API is a page: no scripts, no frames, no plugins, nothing to load.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc are files of this origin (app/core/docs.py): no inline script, nothing
# from elsewhere. Their styles are injected at run time (ReDoc's styled-components), and ReDoc
# runs its search index in a worker made from a blob.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=63072000; includeSubDomains"
_COMMON = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
)
RawHeaders = tuple[tuple[bytes, bytes], ...]


def _raw(*headers: tuple[str, str]) -> RawHeaders:
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


def add_missing_headers(message: Message, headers: RawHeaders) -> None:
    """Add `headers` (lower-case names) to a response start, except those the app already set.

    Each middleware that stamps an answer uses this: an endpoint's own values always win.
    """
    present = {name.lower() for name, _ in message.get("headers", ())}
    message["headers"] = [
        *message.get("headers", ()),
        *(header for header in headers if header[0] not in present),
    ]


class SecurityHeaders:
    """The security headers of an answer (an endpoint's own values win).

    Not a middleware of its own: `RequestContextMiddleware` stamps them with the request id, in
    the one `send` wrapper every answer passes through (its last-resort 500 too), which saves
    a layer on every request.
    """

    def __init__(self, *, api_prefix: str) -> None:
        self.api_prefix = api_prefix
        # Encoded once: this runs on every answer. Each pair: over HTTP, over HTTPS (HSTS).
        api = _raw(*_COMMON, ("content-security-policy", API_CSP), ("cache-control", "no-store"))
        docs = _raw(*_COMMON, ("content-security-policy", DOCS_CSP))
        other = _raw(*_COMMON, ("content-security-policy", API_CSP))
        hsts = _raw(("strict-transport-security", HSTS))
        self._api = (api, (*api, *hsts))
        self._docs = (docs, (*docs, *hsts))
        self._other = (other, (*other, *hsts))

    def for_path(self, path: str) -> tuple[RawHeaders, RawHeaders]:
        """The headers of an answer on `path`: over plain HTTP, and over HTTPS (with HSTS).

        Which of the two is read when the answer starts: the trusted-proxy middleware may have
        set the scheme by then.
        """
        if path.startswith(DOCS_PATHS):
            return self._docs
        return self._api if path.startswith(self.api_prefix) else self._other


class HeadAsGetMiddleware:
    """Answer HEAD wherever GET is answered: same status and headers, no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a HEAD request as GET and swallow the body it produces."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            # The outer layers (access log, metrics) read the matched route from the scope.
            if "route" in as_get:
                scope["route"] = as_get["route"]


class CorsPreflightRefusedError(AppError):
    """A CORS preflight from an origin, method or header the service does not allow."""

    code = "cors_preflight_refused"
    status_code = 400
    default_detail = "This cross-origin request is not allowed."


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling; a refused preflight is a problem document, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """The preflight answer; a refusal keeps its reason (origin, method, headers)."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        reason = bytes(response.body).decode() or "Disallowed CORS request"
        return app_error_response(
            CorsPreflightRefusedError(f"{reason}: see CORS_ORIGINS."), request_id=None
        )
