"""Access tokens resist the attacks a reviewer would try; hashing is bounded and off the loop."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

import app.core.security as security_module
from app.core.config import Settings
from app.core.security import (
    JWT_ALGORITHM,
    REQUIRED_CLAIMS,
    JwtExpiredError,
    JwtInvalidError,
    PasswordHasher,
    create_access_token,
    decode_access_token,
    hash_refresh_token,
    new_refresh_token,
)

SETTINGS = Settings(SECRET_KEY="s" * 64)  # type: ignore[arg-type]
KEY = SETTINGS.SECRET_KEY.get_secret_value()


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "sub": "3b4c7a52-5b83-4f3e-a9a1-3a4bb8f2c0de",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=15),
        "jti": "abc123",
        "type": "access",
        "iss": SETTINGS.JWT_ISSUER,
        "aud": SETTINGS.JWT_AUDIENCE,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: str = KEY, algorithm: str = JWT_ALGORITHM) -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token, lifetime = create_access_token(subject="user-1", settings=SETTINGS)
    assert decode_access_token(token, settings=SETTINGS).subject == "user-1"  # now remembered
    later = datetime.now(UTC).timestamp() + lifetime + SETTINGS.JWT_LEEWAY_SECONDS + 1
    monkeypatch.setattr("app.core.security.time.time", lambda: later)
    with pytest.raises(JwtExpiredError):
        decode_access_token(token, settings=SETTINGS)


def test_a_remembered_token_is_refused_before_its_not_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token, _ = create_access_token(subject="user-1", settings=SETTINGS)
    decode_access_token(token, settings=SETTINGS)
    earlier = datetime.now(UTC).timestamp() - SETTINGS.JWT_LEEWAY_SECONDS - 60
    monkeypatch.setattr("app.core.security.time.time", lambda: earlier)  # the clock stepped back
    with pytest.raises(JwtInvalidError):
        decode_access_token(token, settings=SETTINGS)


def test_a_token_remembered_under_one_key_is_refused_under_another() -> None:
    token, _ = create_access_token(subject="user-1", settings=SETTINGS)
    decode_access_token(token, settings=SETTINGS)
    rotated = Settings(SECRET_KEY="r" * 64)  # type: ignore[arg-type]
    with pytest.raises(JwtInvalidError):
        decode_access_token(token, settings=rotated)


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security_module, "VERIFIED_TOKENS_MAX", 3)
    monkeypatch.setattr(security_module, "_verified", OrderedDict())
    tokens = [create_access_token(subject=f"user-{i}", settings=SETTINGS)[0] for i in range(5)]
    for token in tokens:
        decode_access_token(token, settings=SETTINGS)
    assert len(security_module._verified) <= 3
    # A forgotten token is verified again, not refused.
    assert decode_access_token(tokens[0], settings=SETTINGS).subject == "user-0"


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_round_trips_with_every_claim() -> None:
    token, lifetime = create_access_token(subject="user-1", settings=SETTINGS)
    decoded = decode_access_token(token, settings=SETTINGS)
    assert decoded.subject == "user-1"
    assert lifetime == 900
    # exp is whole seconds, iat keeps its fraction (to order it against password changes).
    assert timedelta(seconds=899) < decoded.expires_at - decoded.issued_at <= timedelta(seconds=900)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == set(REQUIRED_CLAIMS)


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(JwtInvalidError):
        decode_access_token(unsigned, settings=SETTINGS)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_another_hmac_algorithm_is_refused_even_with_the_right_key(algorithm: str) -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(claims(), algorithm=algorithm), settings=SETTINGS)


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign(claims()).split(".")
    forged = f"{header}.{b64(claims(sub='someone-else'))}.{signature}"
    with pytest.raises(JwtInvalidError):
        decode_access_token(forged, settings=SETTINGS)


def test_wrong_signature_key_is_refused() -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(claims(), key="k" * 64), settings=SETTINGS)


def test_expired_token_is_its_own_error() -> None:
    old = claims(
        iat=datetime.now(UTC) - timedelta(hours=1),
        nbf=datetime.now(UTC) - timedelta(hours=1),
        exp=datetime.now(UTC) - timedelta(minutes=1),
    )
    with pytest.raises(JwtExpiredError):
        decode_access_token(sign(old), settings=SETTINGS)


def test_expiry_within_the_leeway_is_accepted() -> None:
    recent = claims(exp=datetime.now(UTC) - timedelta(seconds=SETTINGS.JWT_LEEWAY_SECONDS - 3))
    assert decode_access_token(sign(recent), settings=SETTINGS).token_id == "abc123"


def test_not_yet_valid_token_is_refused() -> None:
    future = claims(nbf=datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(future), settings=SETTINGS)


def test_issued_in_the_future_is_refused() -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(
            sign(claims(iat=datetime.now(UTC) + timedelta(minutes=5))), settings=SETTINGS
        )


@pytest.mark.parametrize(
    "override", [{"aud": "another-api"}, {"iss": "someone-else"}, {"aud": ["x", "y"]}]
)
def test_wrong_audience_or_issuer_is_refused(override: dict[str, Any]) -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(claims(**override)), settings=SETTINGS)


@pytest.mark.parametrize("missing", REQUIRED_CLAIMS)
def test_each_required_claim_is_required(missing: str) -> None:
    payload = claims()
    del payload[missing]
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(payload), settings=SETTINGS)


@pytest.mark.parametrize("token_type", ["refresh", "id", "", None])
def test_only_access_tokens_are_accepted(token_type: str | None) -> None:
    payload = claims(type=token_type) if token_type is not None else claims()
    if token_type is None:
        payload["type"] = None
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(payload), settings=SETTINGS)


@pytest.mark.parametrize("sub", [123, ["a"], {"id": 1}])
def test_non_string_subject_is_refused(sub: object) -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(claims(sub=sub)), settings=SETTINGS)


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b.c", "Bearer x", "x" * 5000, new_refresh_token()]
)
def test_garbage_and_refresh_tokens_are_not_access_tokens(garbage: str) -> None:
    with pytest.raises(JwtInvalidError):
        decode_access_token(garbage, settings=SETTINGS)


def test_refresh_tokens_are_random_and_stored_as_sha256() -> None:
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert hash_refresh_token(token) == hash_refresh_token(token)
    assert len(hash_refresh_token(token)) == 64
    assert token not in hash_refresh_token(token)


async def test_password_hashing_is_argon2id_and_verifies() -> None:
    hasher = PasswordHasher(Settings(ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=1024))
    hashed = await hasher.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,")
    assert await hasher.verify("correct horse battery staple", hashed) == (True, None)
    assert (await hasher.verify("wrong", hashed))[0] is False


async def test_outdated_parameters_are_upgraded_on_verify() -> None:
    weak = PasswordHasher(Settings(ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=1024))
    strong = PasswordHasher(Settings(ARGON2_TIME_COST=2, ARGON2_MEMORY_KIB=2048))
    old_hash = await weak.hash("correct horse battery staple")
    valid, upgraded = await strong.verify("correct horse battery staple", old_hash)
    assert valid
    assert upgraded is not None
    assert "m=2048,t=2" in upgraded


async def test_hashes_run_in_threads_never_more_than_the_bound_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(
        Settings(ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=1024, PASSWORD_HASH_CONCURRENCY=2)
    )
    running = 0
    peak = 0
    lock = threading.Lock()
    loop_thread = threading.get_ident()
    real_hash = hasher._hash.hash

    def observed_hash(password: str) -> str:
        nonlocal running, peak
        assert threading.get_ident() != loop_thread  # off the event loop
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            threading.Event().wait(0.02)
            return real_hash(password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hasher._hash, "hash", observed_hash)
    results = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(12)))
    assert len(set(results)) == 12
    assert peak == 2


async def test_the_event_loop_keeps_running_while_hashes_are_queued() -> None:
    hasher = PasswordHasher(
        Settings(ARGON2_TIME_COST=2, ARGON2_MEMORY_KIB=8192, PASSWORD_HASH_CONCURRENCY=1)
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash("x" * 20) for _ in range(4)))
    task.cancel()
    assert ticks > 10  # the loop kept scheduling other work while hashes ran


async def test_the_production_defaults_are_the_measured_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 0011: t=2, m=64 MiB, p=1 (the suite itself runs with cheaper settings)."""
    for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM"):
        monkeypatch.delenv(name, raising=False)
    hasher = PasswordHasher(Settings(_env_file=None))
    hashed = await hasher.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=2,p=1$")
    assert (await hasher.verify("correct horse battery staple", hashed))[0]


@pytest.mark.parametrize(
    "override",
    [
        {"exp": "9999999999"},
        {"exp": 1e30},
        {"iat": -1e20},
        {"iat": "1700000000"},
        {"nbf": "0"},
        {"exp": True},
        {"iat": 1e300},
    ],
)
def test_numeric_dates_that_no_clock_can_hold_are_invalid_tokens(override: dict[str, Any]) -> None:
    # Signed with the real key: before, these crashed the request with a 500.
    with pytest.raises(JwtInvalidError):
        decode_access_token(sign(claims(**override)), settings=SETTINGS)
