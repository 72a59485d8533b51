"""HTTP glue of payments: the list page a request will read, named before it is validated.

`create_app` hands `prefetch_payment_list` to the rate-limit middleware, whose one Redis round
trip then also reads the caller's cached list page (ADR 0022, ADR 0035): a cached
`GET /payments` makes one Redis call and no database call. Only a plain first page is named
(no filter, no cursor, at most a `limit`); any other query reads its entry itself. The name is
only a hint: the handler validates the query and looks up the entry its values spell, and an
entry read ahead for nothing is dropped with the request.
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
    digits = query_string.removeprefix(_LIMIT)
    if digits is query_string or not digits.isdigit() or len(digits) > 3:
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
    return [payments_service.list_entry(user_id, limit=limit)]
