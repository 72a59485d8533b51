"""Auth request and response bodies, and the password policy they enforce."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from app.core.types import NonBlankText, Text

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 128
# A few of the most common long passwords from public breach lists; length alone lets these
# through. NIST SP 800-63B asks for a block-list check instead of composition rules.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "password1234",
        "password12345",
        "passwordpassword",
        "qwertyuiopasdf",
        "qwerty123456",
        "iloveyou1234",
        "111111111111",
        "000000000000",
        "abcdefghijkl",
        "letmein12345",
        "welcome12345",
        "adminadmin123",
        "changeme1234",
    }
)

Password = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why this password is refused (empty when it is acceptable)."""
    problems = []
    if not password.strip():
        problems.append("must not be blank")
    if len(set(password)) < 4:
        problems.append("must use at least 4 different characters")
    if password.lower() in COMMON_PASSWORDS:
        problems.append("is too common")
    if email:
        local_part = email.split("@", 1)[0].lower()
        if len(local_part) >= 4 and local_part in password.lower():
            problems.append("must not contain your email address")
    return problems


def _refuse_weak(password: str, *, email: str | None) -> str:
    problems = password_problems(password, email=email)
    if problems:
        raise ValueError("; ".join(problems))
    return password


class UserCreate(BaseModel):
    """Registration form."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    password: Text = Password
    full_name: NonBlankText = Field(min_length=1, max_length=200)

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("password")
    @classmethod
    def _password_policy(cls, value: str, info: ValidationInfo) -> str:
        # `email` is declared first, so it is validated (or failed) by now.
        return _refuse_weak(value, email=info.data.get("email"))


class TokenPair(BaseModel):
    """An access token (JWT, short-lived) and a refresh token (opaque, rotating)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = Field(description="Lifetime of the access token, in seconds.")


class RefreshRequest(BaseModel):
    """A refresh token to rotate, or to revoke on logout."""

    model_config = ConfigDict(extra="forbid")

    # Generous bound: any token-like string (even an access token) gets a proper 401, not a 422.
    refresh_token: Text = Field(min_length=1, max_length=2048)


class PasswordChange(BaseModel):
    """Change the password: the current one proves it is really the owner."""

    model_config = ConfigDict(extra="forbid")

    current_password: Text = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: Text = Password

    @field_validator("new_password")
    @classmethod
    def _password_policy(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("current_password"):
            raise ValueError("must differ from the current password")
        return _refuse_weak(value, email=None)
