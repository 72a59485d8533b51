"""Field types shared by several modules' schemas: text and date-times the database can store."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")
# JSON Schema (ECMA-262) form of the rule below, so the contract states it too.
TEXT_PATTERN = r"^[^\u0000]*$"


def _require_rfc3339_text(value: object) -> object:
    # Pydantic would also read 0.5 or 1700000000 as a Unix time; the contract says RFC 3339.
    if isinstance(value, str) and not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


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

Rfc3339 = Annotated[datetime, BeforeValidator(_require_rfc3339_text)]
