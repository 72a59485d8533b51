"""A token signed with the real key but holding impossible times is a 401, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from httpx import AsyncClient

from app.core.config import get_settings
from app.core.security import JWT_ALGORITHM
from tests.factories import signed_in_user


@pytest.mark.parametrize(
    "override", [{"exp": "9999999999"}, {"exp": 1e30}, {"iat": -1e20}, {"nbf": "0"}]
)
async def test_impossible_numeric_dates_are_invalid_tokens(
    client: AsyncClient, override: dict[str, object]
) -> None:
    user = await signed_in_user(client)
    settings = get_settings()
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": user.id,
        "iat": now.timestamp(),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "probe",
        "type": "access",
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        **override,
    }
    token = jwt.encode(claims, settings.SECRET_KEY.get_secret_value(), algorithm=JWT_ALGORITHM)
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
