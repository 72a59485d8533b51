"""Cursors are opaque, signed and round-trip; anything else is a clean validation error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import ValidationFailedError
from app.core.pagination import KeysetPosition, Page, build_page, decode_cursor, encode_cursor


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.uuids(),
)
def test_cursors_round_trip(created_at: datetime, identifier: uuid.UUID) -> None:
    position = KeysetPosition(created_at=created_at, id=identifier)
    assert decode_cursor(encode_cursor(position)) == position


@given(st.text(max_size=200))
def test_any_other_string_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        decode_cursor(text)
    assert raised.value.fields is not None
    assert raised.value.fields[0].field == "query.cursor"


def test_a_flipped_byte_is_detected() -> None:
    cursor = encode_cursor(KeysetPosition(created_at=datetime.now(UTC), id=uuid.uuid4()))
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    with pytest.raises(ValidationFailedError):
        decode_cursor(flipped)


class IntPage(Page[int]):
    pass


def test_build_page_uses_the_extra_row_only_to_announce_a_next_page() -> None:
    now = datetime.now(UTC)

    def position(value: int) -> KeysetPosition:
        return KeysetPosition(created_at=now, id=uuid.UUID(int=value))

    full = build_page(IntPage, [1, 2, 3], limit=2, to_item=lambda x: x * 10, position=position)
    assert full.items == [10, 20]
    assert full.next_cursor is not None
    assert decode_cursor(full.next_cursor).id == uuid.UUID(int=2)
    last = build_page(IntPage, [1, 2], limit=2, to_item=lambda x: x, position=position)
    assert last.next_cursor is None
    empty = build_page(IntPage, [], limit=2, to_item=lambda x: x, position=position)
    assert empty.items == []
    assert empty.next_cursor is None
