"""The scheduler process: `python -m app.scheduler` (exactly one per deployment).

It runs taskiq's own scheduler loop on `app.worker:scheduler`, which sends each periodic job
(the clean-ups, the deposits' sweeper) to the stream when its cron comes round; the workers run
them. What this module adds is the stop: `taskiq scheduler` handles Ctrl-C but dies of SIGTERM
(exit 143, what an orchestrator sends), so here both signals cancel the loop, which shuts the
broker down and exits 0. A send cut short is harmless: the next tick sends the job again.
And the logs: taskiq's own lines go through app.core.logging (JSON outside development), not
taskiq's plain-text `logging.basicConfig`, so the log shipper can parse every line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from app.core.config import get_settings
from app.core.logging import configure_logging

SCHEDULER = "app.worker:scheduler"


async def _run() -> None:
    # Imported here: the scheduler object imports the broker and every task module.
    from taskiq.cli.scheduler.args import SchedulerArgs
    from taskiq.cli.scheduler.run import run_scheduler

    main = asyncio.current_task()
    assert main is not None  # noqa: S101 - asyncio.run runs us in a task
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main.cancel)
    # taskiq's loop catches the cancellation, shuts the broker and sources down, and returns;
    # a signal during its start-up, before that loop runs, ends here.
    with contextlib.suppress(asyncio.CancelledError):
        await run_scheduler(SchedulerArgs.from_cli([SCHEDULER, "--no-configure-logging"]))


def main() -> int:
    """Entry point of `python -m app.scheduler`."""
    settings = get_settings()
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format)
    asyncio.run(_run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
