"""The worker's tasks and broker as declared: timeouts, serialisation, no stored results."""

from __future__ import annotations

from taskiq.result_backends.dummy import DummyResultBackend
from taskiq.serializers import JSONSerializer

from app.core.broker import STREAM_HIGH_WATER, STREAM_MAXLEN
from app.core.config import get_settings
from app.core.outbox import BATCH
from app.worker import broker


def test_every_task_times_out_before_another_worker_could_be_handed_it() -> None:
    redelivery = get_settings().TASK_REDELIVERY_SECONDS
    tasks = broker.get_all_tasks()
    assert set(tasks) == {
        "deposits.complete",
        "deposits.send_receipt",
        "deposits.sweep",
        "idempotency.delete_expired",
        "auth.delete_expired_refresh_tokens",
    }
    for name, task in tasks.items():
        assert 0 < task.labels["timeout"] <= redelivery / 2, name
    assert broker.idle_timeout == redelivery * 1000


def test_messages_are_json_and_no_result_is_kept() -> None:
    assert isinstance(broker.serializer, JSONSerializer)  # never pickle
    assert isinstance(broker.result_backend, DummyResultBackend)  # nothing grows in Redis


def test_the_relay_pauses_far_below_the_length_redis_would_trim_at() -> None:
    assert broker.maxlen == STREAM_MAXLEN
    # The relay checks before each batch: the stream holds at most the mark plus one batch.
    assert STREAM_HIGH_WATER + BATCH <= STREAM_MAXLEN / 2
