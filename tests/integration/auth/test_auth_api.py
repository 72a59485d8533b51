"""Registration, login, refresh rotation, logout and password change, attacked like a reviewer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import RefreshToken
from app.core.config import get_settings
from app.core.security import create_access_token, hash_refresh_token
from app.users.models import User
from tests.assertions import problem
from tests.conftest import LogReader
from tests.factories import DEFAULT_PASSWORD, login, register, signed_in_user, unique_email
from tests.integration.conftest import settings_changed

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"


# --- registration -----------------------------------------------------------------------


async def test_register_returns_the_public_profile(client: AsyncClient) -> None:
    email = unique_email("Mixed.Case")
    response = await client.post(
        REGISTER, json={"email": email, "password": DEFAULT_PASSWORD, "full_name": " Ada L "}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "full_name", "created_at"}
    assert body["email"] == email.lower()
    assert body["full_name"] == "Ada L"
    uuid.UUID(body["id"])
    datetime.fromisoformat(body["created_at"])


async def test_register_twice_with_different_case_is_email_taken(client: AsyncClient) -> None:
    email = unique_email("twice")
    await register(client, email=email)
    response = await client.post(
        REGISTER,
        json={"email": email.upper(), "password": DEFAULT_PASSWORD, "full_name": "Copy"},
    )
    problem(response, 409, "email_taken")


async def test_the_database_itself_refuses_a_mixed_case_email(session: AsyncSession) -> None:
    session.add(User(email="Upper@Example.com", password_hash="x", full_name="x"))
    with pytest.raises(Exception, match="ck_users_email_lowercase"):
        await session.flush()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-1", "at least 12"),
        ("a" * 129, "at most 128"),
        ("aaaaaaaaaaaa", "4 different characters"),
        ("Password1234", "too common"),
        ("            ", "must not be blank"),
    ],
)
async def test_password_policy_failures_name_the_field(
    client: AsyncClient, password: str, reason: str
) -> None:
    response = await client.post(
        REGISTER, json={"email": unique_email(), "password": password, "full_name": "X"}
    )
    body = problem(response, 422, "validation_error")
    fields = body["fields"]
    assert isinstance(fields, list)
    assert [f["field"] for f in fields] == ["body.password"]
    assert reason in fields[0]["message"]
    assert password.strip() == "" or password not in response.text


async def test_password_must_not_contain_the_email(client: AsyncClient) -> None:
    response = await client.post(
        REGISTER,
        json={"email": "gardener@example.com", "password": "my-gardener-pass", "full_name": "G"},
    )
    body = problem(response, 422, "validation_error")
    assert "must not contain your email" in str(body["fields"])


@pytest.mark.parametrize(
    "email",
    [
        "' OR 1=1 --@example.com",
        "admin@example.com'; DROP TABLE users; --",
        '"; SELECT pg_sleep(5); --"@example.com',
        "not-an-email",
        "a@b",
        "x" * 300 + "@example.com",
        "",
    ],
)
async def test_hostile_or_invalid_emails_are_422_never_500(client: AsyncClient, email: str) -> None:
    response = await client.post(
        REGISTER, json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "X"}
    )
    problem(response, 422, "validation_error")


async def test_over_long_and_unknown_fields_are_rejected(client: AsyncClient) -> None:
    too_long = await client.post(
        REGISTER,
        json={"email": unique_email(), "password": DEFAULT_PASSWORD, "full_name": "x" * 201},
    )
    problem(too_long, 422, "validation_error")
    extra = await client.post(
        REGISTER,
        json={
            "email": unique_email(),
            "password": DEFAULT_PASSWORD,
            "full_name": "X",
            "role": "admin",
        },
    )
    body = problem(extra, 422, "validation_error")
    assert body["fields"] == [
        {
            "field": "body.role",
            "message": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]


# --- login ------------------------------------------------------------------------------


async def test_login_returns_a_bearer_pair_that_is_not_cached(client: AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        LOGIN, data={"username": user["email"].upper(), "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == user["id"]


async def test_unknown_email_and_wrong_password_get_the_same_answer(client: AsyncClient) -> None:
    user = await register(client)
    wrong_password = await client.post(
        LOGIN, data={"username": user["email"], "password": "not-the-password-1"}
    )
    unknown_email = await client.post(
        LOGIN, data={"username": unique_email("ghost"), "password": "not-the-password-1"}
    )
    first = problem(wrong_password, 401, "invalid_credentials")
    second = problem(unknown_email, 401, "invalid_credentials")
    for body in (first, second):
        body.pop("request_id")
    assert first == second
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


async def test_both_failures_spend_one_password_verification(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comparable time by construction: an unknown email still runs one Argon2 verify."""
    from app.core.security import PasswordHasher

    calls: list[str] = []
    real_verify = PasswordHasher.verify

    async def counting_verify(
        self: PasswordHasher, password: str, hashed: str
    ) -> tuple[bool, str | None]:
        calls.append(hashed[:9])
        return await real_verify(self, password, hashed)

    user = await register(client)
    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    await client.post(LOGIN, data={"username": user["email"], "password": "wrong-password-1"})
    await client.post(LOGIN, data={"username": unique_email(), "password": "wrong-password-1"})
    assert calls == ["$argon2id", "$argon2id"]


async def test_inactive_users_cannot_sign_in_or_use_tokens(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    await session.execute(update(User).where(User.email == user.email).values(is_active=False))
    problem(
        await client.post(LOGIN, data={"username": user.email, "password": user.password}),
        401,
        "invalid_credentials",
    )
    problem(await client.get(ME, headers=user.headers), 401, "invalid_token")
    problem(
        await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401, "invalid_token"
    )


@pytest.mark.parametrize(
    "form",
    [
        {"username": "' OR '1'='1", "password": "' OR '1'='1"},
        {"username": "x" * 320, "password": "y"},
        {"username": "someone@example.com", "password": "p" * 128},
    ],
)
async def test_hostile_login_forms_are_plain_invalid_credentials(
    client: AsyncClient, form: dict[str, str]
) -> None:
    problem(await client.post(LOGIN, data=form), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("form", "field", "kind"),
    [
        ({"username": "x" * 321, "password": "y"}, "body.username", "string_too_long"),
        ({"username": "a@b.c", "password": "p" * 129}, "body.password", "string_too_long"),
        ({"username": "a@b.c\x00", "password": "y"}, "body.username", "value_error"),
        ({"username": "a@b.c", "password": "pass\x00word"}, "body.password", "value_error"),
        ({"username": "a@b.c", "password": "y", "scope": "\x00"}, "body.scope", "value_error"),
    ],
)
async def test_login_forms_the_database_could_not_hold_are_422_naming_the_field(
    client: AsyncClient, form: dict[str, str], field: str, kind: str
) -> None:
    """Over-long or NUL-carrying fields (`%00`; once a 500 from PostgreSQL) never reach a query."""
    body = problem(await client.post(LOGIN, data=form), 422, "validation_error")
    assert [(f["field"], f["type"]) for f in body["fields"]] == [(field, kind)]  # type: ignore[attr-defined]


async def test_login_accepts_the_form_swagger_ui_sends(client: AsyncClient) -> None:
    user = await register(client)
    form = {"grant_type": "password", "username": user["email"], "password": DEFAULT_PASSWORD}
    response = await client.post(LOGIN, data={**form, "scope": "", "client_id": "swagger"})
    assert response.status_code == 200, response.text
    other_grant = {**form, "grant_type": "client_credentials"}
    body = problem(await client.post(LOGIN, data=other_grant), 422, "validation_error")
    assert [f["field"] for f in body["fields"]] == ["body.grant_type"]  # type: ignore[attr-defined]


async def test_login_needs_the_form_fields(client: AsyncClient) -> None:
    body = problem(await client.post(LOGIN, data={"username": "a@b.c"}), 422, "validation_error")
    assert body["fields"] == [
        {"field": "body.password", "message": "Field required", "type": "missing"}
    ]


async def test_nothing_secret_reaches_the_logs(client: AsyncClient, log_lines: LogReader) -> None:
    user = await signed_in_user(client)
    await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    await client.get(ME, headers=user.headers)
    text = str(log_lines())
    assert "login_succeeded" in text
    for secret in (user.password, user.refresh_token, user.access_token, "$argon2id$"):
        assert secret not in text


# --- access tokens on a protected route -------------------------------------------------


async def test_no_token_is_not_authenticated_with_a_bearer_challenge(client: AsyncClient) -> None:
    response = await client.get(ME)
    problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_refresh_token_is_not_an_access_token(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    response = await client.get(ME, headers={"Authorization": f"Bearer {user.refresh_token}"})
    problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_an_access_token_cannot_refresh(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    problem(
        await client.post(REFRESH, json={"refresh_token": user.access_token}), 401, "invalid_token"
    )


async def test_expired_access_token_is_token_expired(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = create_access_token(subject=user.id, settings=get_settings(), now=an_hour_ago)
    problem(
        await client.get(ME, headers={"Authorization": f"Bearer {expired}"}), 401, "token_expired"
    )


async def test_a_validly_signed_token_for_an_unknown_or_malformed_user_is_refused(
    client: AsyncClient,
) -> None:
    for subject in (str(uuid.uuid4()), "not-a-uuid"):
        token, _ = create_access_token(subject=subject, settings=get_settings())
        problem(
            await client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401, "invalid_token"
        )


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "bearer x.y.z"])
async def test_malformed_authorization_headers(client: AsyncClient, header: str) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] in {"not_authenticated", "invalid_token"}


# --- refresh rotation -------------------------------------------------------------------


async def test_refresh_rotates_and_the_new_pair_works(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    response = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    pair = response.json()
    assert pair["refresh_token"] != user.refresh_token
    me = await client.get(ME, headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    again = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200


async def test_replaying_a_rotated_token_revokes_the_whole_family(
    app: FastAPI, client: AsyncClient, session: AsyncSession
) -> None:
    with settings_changed(app, REFRESH_REUSE_GRACE_SECONDS=0):
        user = await signed_in_user(client)
        first = (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).json()
        newest = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

        replay = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
        problem(replay, 401, "refresh_token_reused")
        # The revocation was committed although the request failed, and it reaches the newest token.
        problem(
            await client.post(REFRESH, json={"refresh_token": newest["refresh_token"]}),
            401,
            "invalid_token",
        )
        family = (
            await session.execute(
                select(RefreshToken.revoked_at).where(
                    RefreshToken.token_hash == hash_refresh_token(newest["refresh_token"])
                )
            )
        ).scalar_one()
        assert family is not None


async def test_a_replay_within_the_grace_window_is_refused_without_revoking(
    client: AsyncClient,
) -> None:
    user = await signed_in_user(client)
    rotated = (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).json()
    body = problem(
        await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401, "invalid_token"
    )
    assert "just rotated" in str(body["detail"])
    still_good = await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert still_good.status_code == 200


async def test_other_logins_survive_a_family_revocation(app: FastAPI, client: AsyncClient) -> None:
    with settings_changed(app, REFRESH_REUSE_GRACE_SECONDS=0):
        user = await signed_in_user(client)
        other_device = await login(client, email=user.email, password=user.password)
        await client.post(REFRESH, json={"refresh_token": user.refresh_token})
        await client.post(REFRESH, json={"refresh_token": user.refresh_token})  # reuse
        ok = await client.post(REFRESH, json={"refresh_token": other_device["refresh_token"]})
        assert ok.status_code == 200


async def test_an_expired_refresh_token_is_token_expired(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(user.refresh_token))
        .values(
            created_at=datetime.now(UTC) - timedelta(days=30),
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    )
    problem(
        await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401, "token_expired"
    )


@pytest.mark.parametrize("token", ["", "x" * 2049])
async def test_refresh_token_length_is_validated(client: AsyncClient, token: str) -> None:
    problem(await client.post(REFRESH, json={"refresh_token": token}), 422, "validation_error")


async def test_only_the_hash_of_a_refresh_token_is_stored(
    client: AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client)
    rows = (await session.execute(select(RefreshToken.token_hash))).scalars().all()
    assert hash_refresh_token(user.refresh_token) in rows
    assert user.refresh_token not in rows


# --- logout and password change ---------------------------------------------------------


async def test_logout_then_refresh_is_refused(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    rotated = (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).json()
    response = await client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    problem(
        await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}),
        401,
        "invalid_token",
    )
    again = await client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 204
    assert (await client.post(LOGOUT, json={"refresh_token": "never-issued"})).status_code == 204


async def test_password_change_revokes_every_session(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    other_device = await login(client, email=user.email, password=user.password)
    response = await client.post(
        PASSWORD,
        json={"current_password": user.password, "new_password": "a-brand-new-passphrase"},
        headers=user.headers,
    )
    assert response.status_code == 204
    for refresh_token in (user.refresh_token, other_device["refresh_token"]):
        problem(
            await client.post(REFRESH, json={"refresh_token": refresh_token}), 401, "invalid_token"
        )
    body = problem(await client.get(ME, headers=user.headers), 401, "invalid_token")
    assert "password was changed" in str(body["detail"])
    problem(
        await client.post(LOGIN, data={"username": user.email, "password": user.password}),
        401,
        "invalid_credentials",
    )
    fresh = await login(client, email=user.email, password="a-brand-new-passphrase")
    me = await client.get(ME, headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200


async def test_password_change_needs_the_current_password(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    body = problem(
        await client.post(
            PASSWORD,
            json={"current_password": "wrong-current-1", "new_password": "a-brand-new-passphrase"},
            headers=user.headers,
        ),
        422,
        "validation_error",
    )
    assert body["fields"] == [
        {
            "field": "body.current_password",
            "message": "Incorrect password.",
            "type": "password_incorrect",
        }
    ]
    assert (await client.get(ME, headers=user.headers)).status_code == 200


@pytest.mark.parametrize(
    ("new_password", "reason"),
    [("a-sturdy-passphrase-42", "must differ"), ("password1234", "too common")],
)
async def test_password_change_applies_the_policy(
    client: AsyncClient, new_password: str, reason: str
) -> None:
    user = await signed_in_user(client)
    body = problem(
        await client.post(
            PASSWORD,
            json={"current_password": user.password, "new_password": new_password},
            headers=user.headers,
        ),
        422,
        "validation_error",
    )
    assert reason in str(body["fields"])


async def test_new_password_must_not_contain_the_email(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    local = user.email.split("@")[0]
    body = problem(
        await client.post(
            PASSWORD,
            json={"current_password": user.password, "new_password": f"x-{local}-x"},
            headers=user.headers,
        ),
        422,
        "validation_error",
    )
    assert body["fields"] == [
        {
            "field": "body.new_password",
            "message": "must not contain your email address",
            "type": "password_policy",
        }
    ]


# --- profile ----------------------------------------------------------------------------


async def test_read_and_update_my_profile(client: AsyncClient) -> None:
    user = await signed_in_user(client)
    me = (await client.get(ME, headers=user.headers)).json()
    assert me["email"] == user.email
    updated = await client.patch(ME, json={"full_name": "  Grace H  "}, headers=user.headers)
    assert updated.status_code == 200
    assert updated.json()["full_name"] == "Grace H"
    unchanged = await client.patch(ME, json={}, headers=user.headers)
    assert unchanged.json()["full_name"] == "Grace H"
    null = await client.patch(ME, json={"full_name": None}, headers=user.headers)
    problem(null, 422, "validation_error")  # once a 500 (schemathesis found it)
    problem(
        await client.patch(ME, json={"email": "new@example.com"}, headers=user.headers),
        422,
        "validation_error",
    )
    problem(
        await client.patch(ME, json={"full_name": "   "}, headers=user.headers),
        422,
        "validation_error",
    )
