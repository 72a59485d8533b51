"""HTTP glue of the ledger: a summary's period from the query.

`summary_period` reads `from` and `to` and refuses an empty period with the 422 every
validation failure gets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from pydantic.json_schema import SkipJsonSchema

from app.core.errors import FieldError, ValidationFailedError
from app.core.types import Rfc3339
from app.ledger.schemas import SummaryPeriod


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
