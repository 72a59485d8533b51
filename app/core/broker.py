"""The task broker: TaskIQ on a Redis stream, with acknowledged delivery (ADR 0025).

Built from settings at import, as `taskiq worker app.worker:broker` requires. Tasks are declared
with `@broker.task` in each module's `tasks.py`; nothing in the API process kicks them directly:
services record them in the transactional outbox (app.core.outbox) and the worker relays them.

- `RedisStreamBroker`: a message stays pending in the consumer group until the task finished
  and acknowledged it; a worker that dies leaves it to be claimed by another after
  `TASK_REDELIVERY_SECONDS` (`idle_timeout`).
- `consumer_id="0"`: the consumer group, made by the first worker that starts, reads the
  stream from its beginning — with taskiq-redis' default `$` a task sent before any worker
  ever ran would be skipped.
- JSON serialisation (taskiq's default; never pickle): task arguments are ids and numbers.
"""

from __future__ import annotations

from taskiq_redis import RedisStreamBroker

from app.core.config import get_settings

_settings = get_settings()

broker = RedisStreamBroker(
    url=str(_settings.REDIS_URL),
    queue_name=_settings.TASK_QUEUE,
    consumer_group_name=f"{_settings.TASK_QUEUE}:workers",
    consumer_id="0",
    idle_timeout=_settings.TASK_REDELIVERY_SECONDS * 1000,
    # Wake up often enough to reclaim the tasks of dead workers (see the note in ADR 0025).
    xread_block=1000,
)
