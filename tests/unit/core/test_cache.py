"""The cache's pieces that need neither Redis nor Postgres."""

from __future__ import annotations

from app.core.cache import INVALIDATIONS, notify_payloads
from app.core.models import CacheInvalidation


def test_notifications_are_cut_to_fit_and_name_every_scope() -> None:
    scopes = [f"account:{i:036d}" for i in range(500)]  # ~22 kB: too much for one NOTIFY
    payloads = list(notify_payloads(scopes))
    assert len(payloads) == 3
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    assert [scope for payload in payloads for scope in payload.split()] == scopes


def test_a_scope_too_long_to_notify_asks_listeners_to_read_the_table() -> None:
    assert list(notify_payloads(["user:1", "x" * 9000, "user:2"])) == ["", "user:1 user:2"]


def test_the_table_the_cache_writes_is_the_table_the_migrations_build() -> None:
    declared = CacheInvalidation.metadata.tables[CacheInvalidation.__tablename__]
    assert INVALIDATIONS.name == declared.name
    assert {c.name: type(c.type) for c in INVALIDATIONS.c} == {
        c.name: type(c.type) for c in declared.c if c.name in INVALIDATIONS.c
    }
