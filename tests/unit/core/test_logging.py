"""Logs are JSON lines through one pipeline, and secrets never reach them in clear."""

from __future__ import annotations

import logging

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.core.logging import REDACTED, configure_logging, get_logger, redact_text
from tests.conftest import LogReader

VISA_TEST_CARD = "4111 1111 1111 1111"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_secrets_are_redacted_by_key_name_at_any_depth(log_lines: LogReader) -> None:
    get_logger("test").info(
        "login_attempt",
        email="ada@example.com",
        password="hunter2-hunter2",
        refresh_token="opaque-refresh-value",
        headers={"Authorization": "Bearer abc.def", "Accept": "application/json"},
        payload={"card": {"number": VISA_TEST_CARD}, "cvv": "123", "amount": 500},
    )
    (line,) = [entry for entry in log_lines() if entry["event"] == "login_attempt"]
    assert line["email"] == "ada@example.com"
    assert line["password"] == REDACTED
    assert line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["payload"] == {"card": REDACTED, "cvv": REDACTED, "amount": 500}


def test_secrets_are_redacted_by_value_shape(log_lines: LogReader) -> None:
    get_logger("test").info(
        "free_text",
        note=f"header was Bearer {JWT} and card {VISA_TEST_CARD}",
        order_number="1234 5678 9012 3456",  # 16 digits, fails the Luhn check: not a card
    )
    (line,) = [entry for entry in log_lines() if entry["event"] == "free_text"]
    assert line["note"] == f"header was Bearer {REDACTED} and card {REDACTED}"
    assert line["order_number"] == "1234 5678 9012 3456"


def test_stdlib_loggers_share_the_pipeline_and_are_redacted(log_lines: LogReader) -> None:
    logging.getLogger("uvicorn.error").warning("client sent Authorization: Bearer %s", JWT)
    (line,) = [entry for entry in log_lines() if entry["logger"] == "uvicorn.error"]
    assert line["level"] == "warning"
    assert line["event"] == f"client sent Authorization: Bearer {REDACTED}"
    assert JWT not in str(line)


def test_exception_text_is_redacted(log_lines: LogReader) -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        get_logger("test").exception("failed")
    (line,) = [entry for entry in log_lines() if entry["event"] == "failed"]
    assert "Traceback" in str(line["exception"])
    assert JWT not in str(line["exception"])


def test_uvicorn_access_log_is_silenced_in_favour_of_ours(log_lines: LogReader) -> None:
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    assert log_lines() == []


def test_console_format_renders_readable_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt="console")
    get_logger("test").info("hello", password="hunter2-hunter2")
    err = capsys.readouterr().err
    assert "hello" in err
    assert "hunter2" not in err
    assert not err.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Basic dXNlcjpwYXNz", f"Basic {REDACTED}"),
        ("card 5555-5555-5555-4444 used", f"card {REDACTED} used"),
        ("id 12345", "id 12345"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_is_bounded_whatever_the_locals_of_its_frames(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO", fmt=fmt)
    capsys.readouterr()
    huge = {f"key-{n}": list(range(50)) for n in range(20_000)}  # a big request in scope

    def fail(payload: dict[str, list[int]]) -> None:
        raise RuntimeError(f"failed with {len(payload)} keys")

    try:
        fail(huge)
    except RuntimeError:
        get_logger("test").exception("boom")
    err = capsys.readouterr().err
    assert "RuntimeError: failed with 20000 keys" in err
    assert "key-19999" not in err  # no locals rendered
    assert len(err.splitlines()) < 60


def _redact_text_without_shortcuts(text: str) -> str:
    """The three substitutions, always run: what redact_text's cheap tests must not change."""
    from app.core import logging as app_logging

    text = app_logging._BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = app_logging._JWT.sub(REDACTED, text)
    return app_logging._CARD.sub(app_logging._mask_card, text)


@pytest.mark.parametrize(
    "text",
    [
        "/api/v1/accounts/3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de",
        "GET",
        "2026-12-02T14:14:08.900698Z",
        "Authorization: BEARER abc.def",
        "Authorization: ba\u017fic dXNlcjpwYXNz",  # long s: IGNORECASE takes it for an "s"
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln in text",
        "card 4111 1111 1111 1111 here",
        "card ٤١١١١١١١١١١١١١١١ in Arabic-Indic digits",
        "twelve digits 411111111111 only",
        "dashed 4111-1111-1111-1111 and bare 5555555555554444",
        "request id 0f3a9b2c4d5e6f708192a3b4c5d6e7f8",
        "",
    ],
)
def test_redact_text_shortcuts_change_nothing(text: str) -> None:
    assert redact_text(text) == _redact_text_without_shortcuts(text)


# Arabic-Indic four and one: \d matches every Unicode decimal digit.
@given(st.text(alphabet="0123456789\u0664\u0661 -Tab.eyJ:", max_size=60))
def test_redact_text_shortcuts_change_nothing_on_any_text(text: str) -> None:
    assert redact_text(text) == _redact_text_without_shortcuts(text)


def _redact_line_without_shortcuts(line: dict[str, object]) -> dict[str, object]:
    """Every field walked, as the processor did before its line-level shortcut."""
    from app.core import logging as app_logging

    return {
        key: REDACTED if app_logging.is_sensitive_key(key) else app_logging._redact(value)
        for key, value in line.items()
    }


# Text made of pieces of secrets and of harmless look-alikes, so that the three value patterns
# match, nearly match and straddle a field's end.
_FIELD_TEXT = st.lists(
    st.sampled_from(
        [
            "4111 1111 1111 1111",
            "5555555555554444",
            "411111111111",
            "\u0664\u0661\u0661\u0661",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "eyJ",
            "Bearer abc.def",
            "ba\u017fic dXNl",
            "/api/v1/accounts/3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de",
            "0f3a9b2c4d5e6f70",
            " ",
            "-",
            "\n",
        ]
    ),
    max_size=4,
).map("".join)
_FIELD = st.one_of(_FIELD_TEXT, st.integers(), st.floats(allow_nan=False), st.none())


# Keys from the access line and a few secrets' names; values flat, text built of the
# characters the three value patterns look for (and the newline the shortcut joins with).
@given(
    st.dictionaries(
        st.sampled_from(["event", "path", "route", "client", "request_id", "password", "card"]),
        _FIELD,
        max_size=7,
    )
)
@example({"path": "Authorization: ba\u017fic dXNlcjpwYXNz", "status": 200})
@example({"request_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"})
@example({"route": "/x", "path": "/pay/4111 1111 1111 1111"})
@example({"event": "login", "password": "hunter2"})
@example({"client": "Bearer abc.def", "status": 401})
@example({"event": "call", "headers": {"authorization": "abc"}, "args": ["Bearer abc"]})
def test_the_line_shortcut_of_the_redaction_changes_nothing(line: dict[str, object]) -> None:
    from app.core.logging import redact_processor

    expected = _redact_line_without_shortcuts(line)
    assert redact_processor(None, "info", dict(line)) == expected


def test_a_line_orjson_refuses_is_still_rendered(log_lines: LogReader) -> None:
    # Beyond 64 bits (orjson refuses it) and a key that is not a string: the stdlib encodes those.
    get_logger("test").info("odd_values", big=2**70, mapping={1: "one"})

    [line] = [line for line in log_lines() if line["event"] == "odd_values"]
    assert line["big"] == 2**70
    assert line["mapping"] == {"1": "one"}
