"""The password policy and email normalisation, checked over generated inputs."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.auth.schemas import (
    COMMON_PASSWORDS,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    PasswordChange,
    UserCreate,
    password_problems,
)

EMAIL = "river.song@example.com"


def make(password: str, email: str = EMAIL) -> UserCreate:
    return UserCreate(email=email, password=password, full_name="River")


# NUL is refused by the shared Text type whatever the policy says (tested below).
STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")


@given(st.text(STORABLE, min_size=PASSWORD_MIN_LENGTH, max_size=PASSWORD_MAX_LENGTH))
@example(" " * PASSWORD_MIN_LENGTH)
@example("aaaabbbbcccc")
@example("password1234")
@example("x-river.song-x")
@example("correct horse battery")
def test_a_long_enough_password_is_refused_exactly_when_a_rule_says_so(password: str) -> None:
    # The rules, stated here on their own (SPEC §2 "password policy", docs/requirements.md):
    # the test does not ask the policy function what it thinks.
    reasons = []
    if not password.strip():
        reasons.append("must not be blank")
    if len(set(password)) < 4:
        reasons.append("at least 4 different characters")
    if password.lower() in COMMON_PASSWORDS:
        reasons.append("too common")
    if "river.song" in password.lower():
        reasons.append("must not contain your email address")
    if reasons:
        with pytest.raises(ValidationError) as refused:
            make(password)
        assert all(reason in str(refused.value) for reason in reasons), str(refused.value)
    else:
        assert make(password).password == password


def test_a_password_with_nul_is_refused_even_when_the_policy_accepts_it() -> None:
    password = "a-sturdy-pass\x00phrase"
    assert password_problems(password, email=EMAIL) == []
    with pytest.raises(ValidationError, match="NUL"):
        make(password)


@given(st.text(max_size=PASSWORD_MIN_LENGTH - 1))
def test_short_passwords_are_always_refused(password: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make(password)
    assert raised.value.errors()[0]["loc"] == ("password",)


@given(st.text(min_size=PASSWORD_MAX_LENGTH + 1, max_size=PASSWORD_MAX_LENGTH + 50))
def test_over_long_passwords_are_always_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        make(password)


@pytest.mark.parametrize("common", sorted(COMMON_PASSWORDS))
def test_common_passwords_are_refused_in_any_case(common: str) -> None:
    assert "is too common" in password_problems(common.upper())


@given(st.sampled_from(["River.Song", "RIVER.SONG", "river.song"]), st.sampled_from(["", " "]))
def test_emails_are_stored_lower_cased_and_trimmed(local: str, pad: str) -> None:
    assert make("a-sturdy-passphrase-42", email=f"{pad}{local}@Example.COM{pad}").email == EMAIL


def test_the_email_local_part_may_not_be_inside_the_password() -> None:
    assert "must not contain your email address" in password_problems(
        "xx-RIVER.SONG-xx", email=EMAIL
    )
    assert password_problems("a-sturdy-passphrase-42", email="abc@example.com") == []


def test_a_new_password_must_differ_from_the_current_one() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        PasswordChange(
            current_password="a-sturdy-passphrase-42", new_password="a-sturdy-passphrase-42"
        )
