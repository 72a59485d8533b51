"""Field types shared by several modules' schemas."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _require_rfc3339_text(value: object) -> object:
    # Pydantic would also read 0.5 or 1700000000 as a Unix time; the contract says RFC 3339.
    if isinstance(value, str) and not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_require_rfc3339_text)]
