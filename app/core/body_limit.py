"""Request body limits: a body over its route class's limit is a 413, refused before it is read.

A pure ASGI middleware in front of everything that parses bodies:

- **Declared too large** (`Content-Length` over the limit): answered 413 at once; the app never
  runs and not one body byte is read (the server stops reading once its buffer is full).
- **Streamed too large** (chunked, or a lying `Content-Length`): bytes are counted as the app
  receives them, and the read that passes the limit raises `BodyTooLargeError` — an HTTP 413
  that the error handlers render like every other error.

Limits are per route class, by path prefix (the longest matching prefix wins), with a default
for the rest. Why not Starlette's `RequestBodyLimitMiddleware` (which FastAPI's `max_body_size`
uses): see ADR 0017 — its 413 is plain text, and it replaces the app's response from inside the
middleware stack by raising through it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.error_handlers import problem_response
from app.core.errors import request_id_of_scope

_DETAIL = "The request body is larger than the {limit} bytes this endpoint accepts."


class BodyTooLargeError(HTTPException):
    """A streamed body passed its limit while the app was reading it."""

    def __init__(self, limit: int) -> None:
        # Close the connection after the answer, rather than read and discard the rest.
        super().__init__(
            status_code=413, detail=_DETAIL.format(limit=limit), headers={"Connection": "close"}
        )


class BodyLimitMiddleware:
    """Refuse request bodies over `default_limit` (or a path prefix's own limit) with 413."""

    def __init__(
        self, app: ASGIApp, *, default_limit: int, limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        # Longest prefix first, so /api/v1/webhooks beats /api/v1.
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The body limit of the route class `path` belongs to."""
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 for a declared oversized body; count the bytes of any other."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = problem_response(
                status_code=413,
                code="payload_too_large",
                detail=_DETAIL.format(limit=limit),
                request_id=request_id_of_scope(scope),
                # The unread body stays on the wire: the connection cannot be reused.
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None
