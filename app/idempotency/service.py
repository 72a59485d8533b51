"""Run an operation at most once per Idempotency-Key, following the IETF draft.

- The same key with the same request, completed: replay the stored status and body.
- The same key with a different request: 422 `idempotency_key_reused`.
- The same key while the first request still runs: 409 `idempotency_key_in_progress`.
- Business outcomes are stored in the same transaction as the effect: a success, or a returned
  `Refusal` (its record kept, e.g. a failed payment). A raised AppError (e.g. `not_found`) is
  stored too, but none of the operation's writes: it is recorded after a rollback, under the
  key's lock again. Anything else (a crash, a failed commit) stores nothing, so the client may
  retry. PostgreSQL decides, so this holds across every API process.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError, Refusal, app_error_body
from app.core.logging import get_logger
from app.core.metrics import IDEMPOTENT_REPLAYS
from app.idempotency import repository
from app.idempotency.errors import IdempotencyKeyInProgressError, IdempotencyKeyReusedError
from app.idempotency.schemas import IdempotentOutcome, IdempotentRequest

logger = get_logger(__name__)


async def run_once(
    session: AsyncSession,
    *,
    request: IdempotentRequest,
    operation: Callable[[], Awaitable[BaseModel | Refusal]],
    success_status: int,
) -> IdempotentOutcome:
    """Execute `operation` unless this key already has an outcome; store the outcome."""
    now = datetime.now(UTC)
    stored = await _lock_and_look_up(session, request=request, now=now)
    if stored is not None:
        return _replay(stored, request=request)
    try:
        result = await operation()
    except AppError as error:
        # A raised refusal keeps none of the operation's writes, yet is stored. The whole
        # transaction is rolled back (it held nothing else) and the refusal is recorded in a
        # new one under the key's lock again: the path every success takes needs no savepoint.
        await session.rollback()
        stored = await _lock_and_look_up(session, request=request, now=now)
        if stored is not None:  # another request completed the key in between
            return _replay(stored, request=request)
        status_code = error.status_code
        body = _render(app_error_body(error, request_id=request.request_id))
    else:
        if isinstance(result, Refusal):
            status_code = result.error.status_code
            body = _render(app_error_body(result.error, request_id=request.request_id))
        else:
            status_code, body = success_status, result.model_dump_json().encode()

    await repository.add(
        session,
        user_id=request.user_id,
        endpoint=request.endpoint,
        key=request.key,
        fingerprint=request.fingerprint,
        response_status=status_code,
        response_body=body,
        expires_at=now + request.kept_for,
    )
    return IdempotentOutcome(status_code=status_code, body=body, replayed=False)


async def _lock_and_look_up(
    session: AsyncSession, *, request: IdempotentRequest, now: datetime
) -> repository.StoredOutcome | None:
    """Hold the key's lock for this transaction (409 if another request holds it); its outcome."""
    claim = await repository.claim(
        session, user_id=request.user_id, endpoint=request.endpoint, key=request.key
    )
    if not claim.held:
        raise IdempotencyKeyInProgressError
    stored = claim.stored
    if stored is not None and stored.expires_at <= now:
        await repository.remove(session, stored.id)
        return None
    return stored


def _replay(stored: repository.StoredOutcome, *, request: IdempotentRequest) -> IdempotentOutcome:
    """The stored answer, if this is the same request; 422 for another under the same key."""
    if stored.fingerprint != request.fingerprint:
        raise IdempotencyKeyReusedError
    logger.info("idempotent_replay", endpoint=request.endpoint)
    IDEMPOTENT_REPLAYS.labels(endpoint=request.endpoint).inc()
    return IdempotentOutcome(
        status_code=stored.response_status, body=stored.response_body, replayed=True
    )


def _render(body: dict[str, object]) -> bytes:
    """JSON as Starlette's JSONResponse renders it: compact, UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def delete_expired_keys(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Delete at most `limit` keys past their expiry (the scheduler's clean-up, in batches)."""
    return await repository.delete_expired(session, now, limit=limit)
