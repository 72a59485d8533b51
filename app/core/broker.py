"""The task broker: TaskIQ on a Redis stream, with acknowledged delivery (ADR 0025, 0026).

Built from settings at import, as `taskiq worker app.worker:broker` requires. Tasks are declared
with `@broker.task` in each module's `tasks.py`; nothing in the API process kicks them directly:
services record them in the transactional outbox (app.core.outbox) and the worker relays them.

- A message stays pending in the consumer group until its task finished and acknowledged it;
  a worker that dies leaves it to be claimed by another after `TASK_REDELIVERY_SECONDS`.
- `consumer_id="0"`: the consumer group, made by the first worker that starts, reads the
  stream from its beginning — with taskiq-redis' default `$` a task sent before any worker
  ever ran would be skipped.
- JSON serialisation (taskiq's default; never pickle): task arguments are ids and numbers.

`LedgerStreamBroker` changes four things of taskiq-redis 1.2.4's `RedisStreamBroker` (ADR 0026):
1. the acknowledgement also deletes the entry (XACK + XDEL), so the stream holds only what is
   unread or running. Its length is then the real backlog, which the outbox relay keeps under
   `STREAM_HIGH_WATER` (`backlog`), far below `STREAM_MAXLEN`: the cap is never reached, so
   trimming can never drop a message that was not acknowledged;
2. dead workers' messages are reclaimed (XAUTOCLAIM) after every read, also a read that found
   nothing new — taskiq-redis reclaims only after a read that returned messages, so a dead
   worker's task waited for the next new task;
3. a Redis outage is waited out inside `listen` (a warning per try, growing pauses) instead of
   raising out of it, which ends the worker process;
4. at start-up (a worker's or the scheduler's), consumers that are gone are removed from the
   group (`prune_gone_consumers`): each worker process is a consumer of a random name, so every
   restart and deploy would otherwise leave one behind, forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq_redis import RedisStreamBroker

from app.core.config import get_settings
from app.core.logging import get_logger
from app.core.metrics import TASK_DURATION, TASKS
from app.core.sentry import report

logger = get_logger(__name__)

# What redis-py answers (bytes, since the pool does not decode): per stream, its entries.
_Entry = tuple[bytes, dict[bytes, bytes]]
_Read = list[tuple[bytes, list[_Entry]]] | None
_Claimed = tuple[bytes, list[_Entry], list[bytes]]

_settings = get_settings()
# Every task's own bound: half the redelivery window (30 s at most), so a task that runs is
# never handed to a second worker while the first still works on it.
TASK_TIMEOUT_SECONDS = max(1, min(30, _settings.TASK_REDELIVERY_SECONDS // 2))
# The stream's hard cap, and the backlog above which the relay leaves tasks in the outbox.
STREAM_MAXLEN = 100_000
STREAM_HIGH_WATER = 10_000
# While Redis is unreachable, the worker tries again after 0.5, 1, 2… s, at most 5 s apart.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 5.0
# A consumer that holds no message and has not read for an hour is taken for a worker that is
# gone. From Redis 7.2, `idle` counts from a consumer's last read *attempt*, and a live worker
# tries every `xread_block` ms; before 7.2 (Debian's 7.0, which `make run` may embed), it counts
# from the last read that returned messages, so a live worker that had nothing to do for an hour
# is dropped too. That is harmless: it holds nothing, and its next read that returns a message
# makes it again (a read blocked meanwhile still gets that message). Dead workers' messages are
# moved by XAUTOCLAIM after the redelivery window, and one whose messages wait in a full
# prefetch queue holds them: only names are ever dropped. Checked and deleted in one script, so
# no consumer can read a message between the check and the deletion (it would go with it).
GONE_CONSUMER_IDLE_MS = 3_600_000
_PRUNE_GONE_CONSUMERS = """
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local field = {}
  for i = 1, #consumer, 2 do field[consumer[i]] = consumer[i + 1] end
  if field['pending'] == 0 and field['idle'] >= tonumber(ARGV[2])
      and field['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], field['name'])
    removed[#removed + 1] = field['name']
  end
end
return removed
"""


class LedgerStreamBroker(RedisStreamBroker):
    """RedisStreamBroker whose stream holds only unacknowledged work (see the module doc)."""

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            async with Redis(connection_pool=self.connection_pool) as redis:
                pipe = redis.pipeline(transaction=True)
                pipe.xack(queue_name, self.consumer_group_name, id)
                pipe.xdel(queue_name, id)
                await pipe.execute()

        return ack

    async def startup(self) -> None:
        """Make the consumer group if it is missing, and remove the consumers that are gone.

        Run by every worker and by the scheduler as they start; never by the API.
        """
        await super().startup()
        try:
            await self.prune_gone_consumers(idle_ms=GONE_CONSUMER_IDLE_MS)
        except RedisError as exc:  # housekeeping: never a reason not to start
            logger.warning("broker_prune_failed", error=type(exc).__name__)

    async def prune_gone_consumers(self, *, idle_ms: int) -> list[str]:
        """Remove the group's consumers that hold nothing and have not read for `idle_ms`."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            removed: list[bytes] = await redis.eval(
                _PRUNE_GONE_CONSUMERS,
                1,
                self.queue_name,
                self.consumer_group_name,
                idle_ms,
                self.consumer_name,
            )
        names = [_text(name) for name in removed]
        if names:
            logger.info("broker_consumers_pruned", queue=self.queue_name, count=len(names))
        return names

    def _message(self, stream: bytes | str, entry_id: bytes, fields: Any) -> AckableMessage:
        return AckableMessage(
            data=fields[b"data"],
            ack=self._ack_generator(id=entry_id.decode(), queue_name=_text(stream)),
        )

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """New messages, then those idle longer than `idle_timeout` (their worker died).

        A Redis outage is waited out here, one warning per try, instead of ending the worker
        process (taskiq would restart it every second, a traceback each time); a Redis that
        comes back empty (no persistence) gets its consumer group again.
        """
        pause = RECONNECT_FIRST_SECONDS
        while True:
            try:
                async for message in self._read_and_reclaim():
                    pause = RECONNECT_FIRST_SECONDS
                    yield message
            except (RedisConnectionError, RedisTimeoutError) as exc:
                logger.warning("broker_unreachable", error=type(exc).__name__, retry_in=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_SECONDS)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                logger.warning("broker_group_recreated", queue=self.queue_name)
                await self._declare_consumer_group()

    async def _read_and_reclaim(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                fetched: _Read = await redis.xreadgroup(  # type: ignore[assignment]
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for stream, entries in fetched or []:
                    for entry_id, fields in entries:
                        yield self._message(stream, entry_id, fields)
                # XAUTOCLAIM moves each idle message to this consumer atomically: two workers
                # calling it at once never both get the same one.
                claimed: _Claimed = await redis.xautoclaim(  # type: ignore[assignment]
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=self.idle_timeout,
                    count=self.unacknowledged_batch_size,
                )
                for entry_id, fields in claimed[1]:
                    if fields:  # an entry deleted while pending comes back empty
                        yield self._message(self.queue_name, entry_id, fields)

    async def backlog(self) -> int:
        """Messages in the stream: unread, or read and not yet acknowledged."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            length: int = await redis.xlen(self.queue_name)
            return length


class LogContextMiddleware(TaskiqMiddleware):
    """Every log line of a task names it, its message id, and the request that recorded it.

    The request id comes from the `request_id` label the outbox relay sets (app.core.outbox):
    one id joins the API's lines and the worker's for the same deposit. Each message runs in
    its own asyncio task, so what is bound here is that task's alone.
    """

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Bind the task's names to the log context of the task about to run."""
        structlog.contextvars.clear_contextvars()
        context = {"task": message.task_name, "task_id": message.task_id}
        if request_id := message.labels.get("request_id"):
            context["request_id"] = str(request_id)
        structlog.contextvars.bind_contextvars(**context)
        return message


class TaskMetricsMiddleware(TaskiqMiddleware):
    """`ledger_tasks_total{task, outcome}` and `ledger_task_duration_seconds{task}` per run.

    A run that raised or overran its timeout is an `error`; a worker that died mid-run counts
    nothing (the message is redelivered and its next run is counted).
    """

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Count the finished run and its duration."""
        outcome = "error" if result.is_err else "success"
        if result.is_err and isinstance(result.error, BaseException):
            report(result.error)  # an unhandled task error (SPEC §7); the log has it too
        TASKS.labels(task=message.task_name, outcome=outcome).inc()
        TASK_DURATION.labels(task=message.task_name).observe(result.execution_time)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


broker = LedgerStreamBroker(
    url=str(_settings.REDIS_URL),
    queue_name=_settings.TASK_QUEUE,
    consumer_group_name=f"{_settings.TASK_QUEUE}:workers",
    consumer_id="0",
    idle_timeout=_settings.TASK_REDELIVERY_SECONDS * 1000,
    # How often an idle worker wakes up to reclaim the tasks of dead workers.
    xread_block=1000,
    maxlen=STREAM_MAXLEN,
).with_middlewares(LogContextMiddleware(), TaskMetricsMiddleware())
