"""NonBlankText: every name and reason of the API is stripped and never only whitespace."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from app.accounts.schemas import AccountCreate
from app.adjustments.schemas import AdjustmentCreate
from app.auth.schemas import UserCreate
from app.users.schemas import UserUpdate

VALID = "a-sturdy-passphrase-42"
CASES: list[tuple[type[BaseModel], dict[str, object], str]] = [
    (AccountCreate, {"currency": "EUR"}, "name"),
    (AdjustmentCreate, {"amount": 5}, "reason"),
    (UserCreate, {"email": "someone@example.com", "password": VALID}, "full_name"),
    (UserUpdate, {}, "full_name"),
]


@pytest.mark.parametrize(
    ("schema", "rest", "field"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_blank_text_is_refused_and_text_is_stripped(
    schema: type[BaseModel], rest: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        schema.model_validate({**rest, field: " \t\n "})
    assert getattr(schema.model_validate({**rest, field: "  Main  "}), field) == "Main"
