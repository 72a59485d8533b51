"""Run the worker: taskiq's worker, with every line it prints through our logging pipeline.

`python -m app.run_worker [taskiq worker options]` is what containers and `make run` start.
It is `taskiq worker app.worker:broker` (which works too) with one difference: taskiq's
process manager, the parent that starts the worker process and restarts it if it dies, logs
through app.core.logging (JSON outside development, secrets redacted) instead of taskiq's
plain-text `logging.basicConfig`. So every line of the worker's output is one JSON object
with a `level`, as the log shipper expects (docker/alloy/config.alloy); the worker process
itself inherits this configuration and sets it again on start-up (app.worker).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import run_worker

from app.core.config import get_settings
from app.core.logging import configure_logging

BROKER = "app.worker:broker"


def main(argv: Sequence[str]) -> int:
    """Configure logging, then run taskiq's worker on our broker; its exit status."""
    settings = get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    args = WorkerArgs.from_cli([BROKER, "--no-configure-logging", *argv])
    return run_worker(args) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
