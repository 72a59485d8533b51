"""HTTP glue of accounts: the account a read will look up.

`create_app` hands `prefetch_account` to the rate-limit middleware,
whose one Redis round trip then also reads the account's cache entry (ADR 0022): a cached
`GET /accounts/{id}` makes one Redis call in all. The path is only a hint — the service still
checks that the account is the caller's, and an entry read ahead for nothing is dropped with
the request.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import Scope

from app.accounts import service as accounts_service
from app.core.cache import Entry

# `GET /accounts/{account_id}` and its summary (the ledger's), which reads the account first.
_ACCOUNT_READ = re.compile(r"/accounts/([0-9A-Fa-f-]{32,36})(?:/summary)?\Z")


def prefetch_account(scope: Scope) -> list[Entry]:
    """The account entry a read of one account will look up, or nothing for any other request."""
    if scope["method"] not in ("GET", "HEAD"):
        return []
    match = _ACCOUNT_READ.search(scope["path"])
    if match is None:
        return []
    try:
        account_id = uuid.UUID(match.group(1))
    except ValueError:
        return []
    return [accounts_service.account_read_entry(account_id)]
