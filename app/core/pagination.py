"""Keyset (cursor) pagination: opaque, signed cursors and the `{items, next_cursor}` envelope.

A cursor is the sort key of the last row of a page — `(created_at, id)` — encoded as base64url
JSON and signed with HMAC-SHA256, so a client cannot forge or edit one: a malformed or tampered
cursor is a 422 `validation_error`, never a 500 and never a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from app.core.config import get_settings
from app.core.errors import FieldError, ValidationFailedError

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P", bound="Page[Any]")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
_SIGNATURE_BYTES = 16


class Page(BaseModel, Generic[T]):
    """One page of a list, and the cursor of the next (null on the last page)."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class KeysetPosition(BaseModel):
    """Where a page ends: the sort key of its last row."""

    created_at: datetime
    id: uuid.UUID


class PageParams(BaseModel):
    """Validated `limit` and decoded `cursor` of a list request."""

    limit: int
    after: KeysetPosition | None


def _sign(payload: bytes) -> bytes:
    key = get_settings().SECRET_KEY.get_secret_value().encode()
    return hmac.new(key, b"cursor:" + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode_cursor(position: KeysetPosition) -> str:
    """An opaque, signed cursor for this position."""
    payload = position.model_dump_json().encode()
    return base64.urlsafe_b64encode(_sign(payload) + payload).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> KeysetPosition:
    """The position a cursor stands for; ValidationFailedError if it is malformed or forged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        signature, payload = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, _sign(payload)):
            raise ValueError("bad signature")
        return KeysetPosition.model_validate(json.loads(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailedError(
            "The cursor is malformed or was not issued by this service.",
            fields=[FieldError(field="query.cursor", message="Invalid cursor.", type="cursor")],
        ) from None


def build_page(
    into: type[P],
    rows: Sequence[R],
    *,
    limit: int,
    to_item: Callable[[R], Any],
    position: Callable[[R], KeysetPosition],
) -> P:
    """A page from `limit + 1` fetched rows: the extra row only says another page exists."""
    shown = rows[:limit]
    more = len(rows) > limit
    return into(
        items=[to_item(row) for row in shown],
        next_cursor=encode_cursor(position(shown[-1])) if more and shown else None,
    )
