"""Tables of the core itself (not of a domain module): the cache's missed invalidations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class CacheInvalidation(Base):
    """A cache scope whose invalidation Redis has not applied yet (ADR 0016).

    Written when a bump fails, or inside the transaction of a commit whose scopes nobody bumps
    (a worker, the CLI); every process applies the rows to Redis, then deletes them.
    """

    __tablename__ = "cache_invalidations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # Text, not a bounded varchar: a too-long scope must never make a business commit fail.
    scope: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TaskOutboxEntry(Base):
    """A task to hand to the broker, committed in the same transaction as what needs it.

    The transactional outbox: a Redis outage right after the commit cannot lose the task,
    because the row is only deleted once the broker has taken it (app.core.outbox).
    """

    __tablename__ = "task_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    task_name: Mapped[str] = mapped_column(Text)
    # The task's keyword arguments as JSON text (ids only: tasks load what they need).
    arguments: Mapped[str] = mapped_column(Text)
    # The id of the request that recorded the task: the worker logs the task's lines with it.
    request_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
