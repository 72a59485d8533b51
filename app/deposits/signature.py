"""The provider's webhook signature: `PSP-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`.

`v1` is HMAC-SHA256 over `"<t>.<raw body bytes>"` with the shared secret (SPEC §6), the scheme
Stripe uses. Signing the timestamp with the body stops a captured request from being replayed
later (the tolerance bounds how late); several `v1` values let the provider roll its secret
without a gap, and comparisons are constant-time so the answer's timing leaks nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from app.deposits.errors import InvalidSignatureError

HEADER = "PSP-Signature"
SCHEME = "v1"


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    """The hex `v1` value for this timestamp and body."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """A whole `PSP-Signature` header value, as the provider sends it (tests, the CLI)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},{SCHEME}={signature(secret, timestamp=at, body=body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, separator, value = part.strip().partition("=")
        if not separator:
            raise InvalidSignatureError("The PSP-Signature header is malformed.")
        if key == "t":
            if timestamp is not None or not value.isdigit():
                raise InvalidSignatureError("The PSP-Signature header is malformed.")
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
        # Other schemes (a future v2) are ignored, as the provider's docs ask of receivers.
    if timestamp is None or not candidates:
        raise InvalidSignatureError("The PSP-Signature header is malformed.")
    return timestamp, candidates


@dataclass(frozen=True)
class SignatureVerifier:
    """Checks a webhook's signature against the secret, within the tolerance both ways."""

    secret: str
    tolerance_seconds: int

    def verify(self, header: str | None, body: bytes, *, now: float | None = None) -> None:
        """Return if the header signs this body recently enough; else InvalidSignatureError."""
        if not header:
            raise InvalidSignatureError("The PSP-Signature header is missing.")
        timestamp, candidates = _parse(header)
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > self.tolerance_seconds:
            raise InvalidSignatureError("The PSP-Signature timestamp is too old or in the future.")
        expected = signature(self.secret, timestamp=timestamp, body=body)
        # Compare every candidate, not stopping at the first match: constant work per header.
        matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
        if not any(matches):
            raise InvalidSignatureError("The PSP-Signature does not match the body.")
