"""The users table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin, one_of
from app.users.schemas import Role


class User(TimestampMixin, Base):
    """A person who can sign in; the email is stored lower-cased, so unique in any case."""

    __tablename__ = "users"
    __table_args__ = (
        # Belt and braces: the service lower-cases, the database refuses anything else, so a
        # differently-cased duplicate can never slip past the unique constraint.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint(one_of("role", Role), name="role_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER, server_default=Role.USER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Access tokens issued before this instant are refused (a password change logs out).
    # Set from the application's clock, like token `iat`, so the two compare without skew.
    password_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC), server_default=func.now()
    )
