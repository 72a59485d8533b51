"""Which principal the rate-limit middleware reads ahead: only a valid bearer token's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.auth.dependencies import prefetch_principal
from app.core.config import get_settings
from app.core.security import create_access_token
from app.users import service as users_service


def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    # Starlette puts the app in every scope; prefetch_principal reads its settings there.
    app = SimpleNamespace(state=SimpleNamespace(settings=get_settings()))
    return {"type": "http", "path": "/api/v1/users/me", "headers": list(headers), "app": app}


def token(subject: str, *, issued: datetime | None = None) -> str:
    signed, _ = create_access_token(subject=subject, settings=get_settings(), now=issued)
    return signed


def test_a_valid_bearer_token_names_its_principal() -> None:
    user_id = uuid.uuid4()
    for scheme in (b"Bearer", b"bearer"):
        header = (b"authorization", scheme + b" " + token(str(user_id)).encode())
        assert prefetch_principal(scope(header)) == [users_service.principal_cache_entry(user_id)]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"Basic dXNlcjpwYXNz",
        b"Bearer not-a-jwt",
        b"Bearer " + token(str(uuid.uuid4())).rsplit(".", 1)[0].encode() + b".forged",
        b"Bearer " + token("not-a-uuid").encode(),
        b"Bearer "
        + token(str(uuid.uuid4()), issued=datetime.now(UTC) - timedelta(hours=1)).encode(),
    ],
    ids=[
        "none",
        "empty",
        "no-token",
        "blank",
        "basic",
        "malformed",
        "forged",
        "subject",
        "expired",
    ],
)
def test_anything_that_will_be_a_401_names_nothing(authorization: bytes | None) -> None:
    headers = [] if authorization is None else [(b"authorization", authorization)]
    assert prefetch_principal(scope(*headers)) == []
