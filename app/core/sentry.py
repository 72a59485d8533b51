"""Error reports to Sentry (SPEC §7), on when SENTRY_DSN is set; without it, nothing is sent.

What is reported: the API's 5xx (a crash the last-resort handler answered, a database error it
could not classify) and the worker's task runs that raised. What is not: every 4xx — business
refusals, validation, auth — which are answers, not faults (`failed_request_status_codes`
stays 5xx, and our handlers answer 4xx without raising).

What a report carries: the environment, the release, the request id (a tag, the same id as the
access log and `X-Request-ID`) or the task and its id, and a stack trace **without local
variables** (money code's locals are amounts and account ids). Not collected (the SDK's
`data_collection`): user information and IPs, cookies, request headers, bodies and query
strings, SQL parameters. Every string and mapping of the event then goes through the same
redaction as the logs (`app.core.logging`): keys named like secrets (password, token,
authorization, card, …) and values shaped like bearer tokens or card numbers are replaced.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport

from app.core.config import Settings
from app.core.logging import redact_event

_SERVER_ERRORS = set(range(500, 600))
# Names of the log context that become tags: the request, or the task of a worker.
_TAGS = ("request_id", "task", "task_id")


def _before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    context = structlog.contextvars.get_contextvars()
    tags = event.setdefault("tags", {})
    for name in _TAGS:
        if context.get(name) is not None:
            tags[name] = str(context[name])
    scrubbed: dict[str, Any] = redact_event(event)
    return scrubbed


def init_sentry(settings: Settings, *, transport: Transport | None = None) -> bool:
    """Start reporting if SENTRY_DSN is set; whether it did. `transport`: tests capture with it."""
    dsn = settings.SENTRY_DSN.get_secret_value()
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.ENVIRONMENT.value,
        release=settings.RELEASE,
        # Collect nothing about people or payloads; before_send then scrubs what is left.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "off"}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "stack_frame_variables": False,
        },
        before_send=_before_send,  # type: ignore[arg-type]  # sentry's Event is a TypedDict
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        integrations=[
            StarletteIntegration(failed_request_status_codes=_SERVER_ERRORS),
            FastApiIntegration(failed_request_status_codes=_SERVER_ERRORS),
        ],
        transport=transport,
    )
    return True


def report(error: BaseException) -> None:
    """Send `error` to Sentry if it is on (a no-op otherwise)."""
    sentry_sdk.capture_exception(error)
