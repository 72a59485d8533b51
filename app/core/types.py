"""Field types shared by several modules' schemas: text and date-times the database can store."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# RFC 3339 §5.6 `date-time`: a full date, a full time and a mandatory offset (Z or ±hh:mm).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
# JSON Schema (ECMA-262) form of the rule below, so the contract states it too.
TEXT_PATTERN = r"^[^\u0000]*$"


def _require_rfc3339_text(value: object) -> object:
    # Pydantic would also read 0.5 or 1700000000 as a Unix time, and a time without an offset
    # as a naive one (which cannot be compared with an aware one); RFC 3339 requires it.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


def _in_utc_range(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-23:59 is a valid RFC 3339 text but past year 9999 in UTC: Python and
    # the database driver cannot represent it. Normalised to UTC, every later step is safe.
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: must lie between years 0001 and 9999 in UTC") from None


def storable_text(value: str) -> str:
    """Refuse NUL, which PostgreSQL's `text` cannot hold (pydantic itself refuses lone surrogates).

    Without this check such input passes validation and fails at the database as a 500.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


# Every free-text field of every request uses this type (or a subtype), so no text the
# database would refuse gets past validation: it is a 422 naming the field, never a 500.
Text = Annotated[
    str, AfterValidator(storable_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]


# Money is an integer of minor units (cents) with a currency, never a float. Every amount a
# request may carry is bounded well inside BIGINT, so no sum of a few amounts overflows in SQL.
MinorUnits = int
MAX_MINOR_UNITS = 10**15


def not_blank(value: str) -> str:
    """Refuse text that is only whitespace; keep it without its surrounding whitespace."""
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


# Free text that must say something (a name, a reason): `Text`, stripped, never only blanks.
NonBlankText = Annotated[Text, AfterValidator(not_blank)]

# The one date-time type of query filters and inputs: offset required, normalised to UTC.
Rfc3339 = Annotated[datetime, BeforeValidator(_require_rfc3339_text), AfterValidator(_in_utc_range)]
