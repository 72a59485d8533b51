"""HTTP glue of payments: the list page a request will read, named before it is validated.

`create_app` hands `prefetch_payment_list` to the rate-limit middleware, whose one Redis round
trip then also reads the caller's cached first page (ADR 0022, ADR 0035): a cached
`GET /payments` makes one Redis call and no database call. Only a query that asks for a first
page and nothing else is named (no query, or a `limit` alone; the only pages cached). The name
is only a hint: the handler validates the query and reads the entry of the page size it got,
and an entry read ahead for nothing is dropped with the request.
"""

from __future__ import annotations

from starlette.types import Scope

from app.auth.dependencies import bearer_user_id
from app.core.cache import Entry
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.payments import service as payments_service

_PATH_END = "/payments"
_LIMIT = b"limit="


def plain_page_limit(query_string: bytes) -> int | None:
    """The page size of a query that asks for a first page and nothing else; None otherwise."""
    if not query_string:
        return DEFAULT_PAGE_SIZE
    if not query_string.startswith(_LIMIT):
        return None
    digits = query_string[len(_LIMIT) :]
    if not digits.isdigit() or len(digits) > 3:
        return None
    limit = int(digits)
    return limit if 1 <= limit <= MAX_PAGE_SIZE else None


def prefetch_payment_list(scope: Scope) -> list[Entry]:
    """The cached page a plain `GET /payments` will read, or nothing for any other request."""
    if scope["method"] not in ("GET", "HEAD") or not scope["path"].endswith(_PATH_END):
        return []
    limit = plain_page_limit(scope["query_string"])
    if limit is None:
        return []
    user_id = bearer_user_id(scope)
    if user_id is None:
        return []
    return [payments_service.first_page_entry(user_id, limit=limit)]
