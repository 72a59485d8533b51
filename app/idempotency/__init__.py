"""Idempotency keys (IETF `Idempotency-Key` draft): a retried request is never executed twice."""
