"""Process lifecycle, shared by the server and the readiness probe: is the process draining."""

from __future__ import annotations

import threading

_draining = threading.Event()


def start_draining() -> None:
    """Mark the process as shutting down: readiness answers 503 from now on."""
    _draining.set()


def is_draining() -> bool:
    """True once shutdown has begun."""
    return _draining.is_set()


def reset_draining() -> None:
    """Forget a previous drain (tests start several servers in one process)."""
    _draining.clear()
