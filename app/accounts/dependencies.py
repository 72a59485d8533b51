"""HTTP glue of accounts: a summary's period from the query; the account a read will look up.

`summary_period` reads `from` and `to` and refuses an empty period with the 422 every
validation failure gets. `create_app` hands `prefetch_account` to the rate-limit middleware,
whose one Redis round trip then also reads the account's cache entry (ADR 0022): a cached
`GET /accounts/{id}` makes one Redis call in all. The path is only a hint — the service still
checks that the account is the caller's, and an entry read ahead for nothing is dropped with
the request.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Query
from pydantic.json_schema import SkipJsonSchema
from starlette.types import Scope

from app.accounts import service as accounts_service
from app.accounts.schemas import SummaryPeriod
from app.core.cache import Entry
from app.core.errors import FieldError, ValidationFailedError
from app.core.types import Rfc3339

# `GET /accounts/{account_id}` and its summary, which reads the account first.
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


async def summary_period(
    start: Annotated[
        Rfc3339 | SkipJsonSchema[None],
        Query(alias="from", description="Period start, inclusive (RFC 3339)."),
    ] = None,
    end: Annotated[
        Rfc3339 | SkipJsonSchema[None],
        Query(alias="to", description="Period end, exclusive (RFC 3339)."),
    ] = None,
) -> SummaryPeriod:
    """The period of a summary, open-ended where omitted; 422 when `to` is not after `from`."""
    if start is not None and end is not None and start >= end:
        raise ValidationFailedError(
            "The period is empty.",
            fields=[FieldError(field="query.to", message="must be after `from`", type="period")],
        )
    return SummaryPeriod(start=start, end=end)


SummaryPeriodDep = Annotated[SummaryPeriod, Depends(summary_period)]
