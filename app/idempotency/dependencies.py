"""HTTP glue: read and check the Idempotency-Key header; turn an outcome into a response."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic.json_schema import SkipJsonSchema

from app.auth.dependencies import CurrentUser
from app.core.dependencies import SettingsDep
from app.core.error_handlers import request_id_of
from app.core.errors import PROBLEM_MEDIA_TYPE
from app.idempotency.errors import IdempotencyKeyInvalidError, IdempotencyKeyMissingError
from app.idempotency.schemas import IdempotentOutcome, IdempotentRequest

REPLAYED_HEADER = "Idempotent-Replayed"


def _canonical_body(raw: bytes) -> bytes:
    """The same JSON however it is spaced or ordered; raw bytes if it is not JSON."""
    try:
        return json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, UnicodeDecodeError):
        return raw


async def idempotent_request(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | SkipJsonSchema[None],
        Header(
            alias="Idempotency-Key",
            description=(
                "Required. A unique value per operation (a UUID is ideal); a retry reuses it. "
                "1 to 255 visible ASCII characters."
            ),
        ),
    ] = None,
) -> IdempotentRequest:
    """Dependency: the validated key and the request's fingerprint (method, path, body)."""
    if idempotency_key is None:
        raise IdempotencyKeyMissingError
    key = idempotency_key.strip()
    if not 1 <= len(key) <= 255 or not all("!" <= char <= "~" for char in key):
        raise IdempotencyKeyInvalidError
    route = request.scope.get("route")
    endpoint = f"{request.method} {getattr(route, 'path', request.url.path)}"
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(_canonical_body(await request.body()))
    return IdempotentRequest(
        user_id=user.id,
        endpoint=endpoint,
        key=key,
        fingerprint=digest.hexdigest(),
        request_id=request_id_of(request),
        kept_for=timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
    )


IdempotencyDep = Annotated[IdempotentRequest, Depends(idempotent_request)]


def outcome_response(outcome: IdempotentOutcome) -> Response:
    """The HTTP response for an outcome; replays say so in `Idempotent-Replayed: true`.

    The body is sent as the stored bytes, so a replay is byte-for-byte the first answer.
    """
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    media_type = PROBLEM_MEDIA_TYPE if outcome.status_code >= 400 else "application/json"
    return Response(
        outcome.body, status_code=outcome.status_code, headers=headers, media_type=media_type
    )
