"""The error registry: codes are unique per status and all of them are known to the contract."""

from __future__ import annotations

import pytest

from app.core.errors import AppError, NotFoundError, all_error_codes


def test_a_code_cannot_be_reused_with_another_status() -> None:
    with pytest.raises(TypeError, match="'not_found' already used"):

        class ClashError(AppError):  # pragma: no cover - the class statement itself must fail
            code = "not_found"
            status_code = 400


def test_app_error_defaults_and_overrides() -> None:
    error = NotFoundError()
    assert error.detail == "The requested resource was not found."
    assert error.fields is None
    assert error.headers == {}
    custom = NotFoundError("No such account.", headers={"X-Hint": "1"})
    assert str(custom) == "No such account."
    assert custom.headers == {"X-Hint": "1"}


def test_all_error_codes_cover_the_framework_and_the_subclasses() -> None:
    codes = all_error_codes()
    assert codes == sorted(set(codes))
    for code in ("not_found", "method_not_allowed", "validation_error", "internal_error"):
        assert code in codes
    assert "rate_limited" in codes
    assert "service_unavailable" in codes
    # Answered by the HTTP protocol itself (app.core.http_protocol), before the app runs.
    assert "request_timeout" in codes
    assert "request_header_fields_too_large" in codes
