"""The lifespan owns the process's pools: engine, Redis, and the password hasher's threads."""

from __future__ import annotations

import pytest

from app.core.security import PasswordHasher
from tests.integration.conftest import started_app


@pytest.mark.usefixtures("migrated_database")
async def test_the_hasher_lives_and_dies_with_the_app() -> None:
    async with started_app() as app:
        hasher = app.state.password_hasher
        assert isinstance(hasher, PasswordHasher)
        hashed = await hasher.hash("correct horse battery staple")
        assert (await hasher.verify("correct horse battery staple", hashed))[0]
    with pytest.raises(RuntimeError, match="shutdown"):
        await hasher.hash("after the app stopped")


@pytest.mark.usefixtures("migrated_database")
async def test_each_app_has_its_own_hasher() -> None:
    async with started_app() as first, started_app() as second:
        assert first.state.password_hasher is not second.state.password_hasher
