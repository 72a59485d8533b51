"""The webhook signature's clock edge, with the clock given: the tolerance holds both ways.

The integration tests read the wall clock and so stay well clear of the edge; the edge itself
is only testable here, where `now` is a number and not a moment that has passed by the check.
"""

from __future__ import annotations

import pytest

from app.deposits.errors import InvalidSignatureError
from app.deposits.signature import SignatureVerifier, sign

SECRET = "whsec_test"
BODY = b'{"id":"evt_1"}'
AT = 1_800_000_000
verifier = SignatureVerifier(secret=SECRET, tolerance_seconds=300)


@pytest.mark.parametrize(
    "now", [AT - 300, AT, AT + 300], ids=["signed-300-s-ahead", "signed-now", "signed-300-s-ago"]
)
def test_a_timestamp_within_the_tolerance_either_way_is_accepted(now: float) -> None:
    verifier.verify(sign(SECRET, BODY, timestamp=AT), BODY, now=now)


@pytest.mark.parametrize("now", [AT - 300.001, AT + 300.001], ids=["from-the-future", "stale"])
def test_a_timestamp_a_moment_past_the_tolerance_is_refused(now: float) -> None:
    with pytest.raises(InvalidSignatureError, match="too old or in the future"):
        verifier.verify(sign(SECRET, BODY, timestamp=AT), BODY, now=now)
