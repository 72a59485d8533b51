"""One real scheduler tick: `taskiq scheduler app.worker:scheduler` puts the sweeper on the stream.

The message is JSON (never pickle) and names the task; a worker would run it. The scheduler
sends the every-minute sweeper at its first tick, so the test waits seconds, not a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid

import redis

from app.cli import scheduler_command
from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import ROOT, read_log


def test_the_scheduler_sends_the_sweeper_as_json_and_stops_on_sigterm() -> None:
    queue = f"ledger:test-scheduler:{uuid.uuid4().hex[:8]}"
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603 - the command make run uses
        scheduler_command(),
        cwd=ROOT,
        env={**os.environ, "TASK_QUEUE": queue, "REDIS_URL": TEST_REDIS_URL},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        sweeps: list[dict[str, object]] = []
        deadline = time.monotonic() + 75  # the first tick, or at worst the next minute's
        while not sweeps and time.monotonic() < deadline and process.poll() is None:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(queue)  # type: ignore[assignment]
            # Other periodic jobs may come due at the same tick (the clean-ups, on the hour).
            messages = [json.loads(fields[b"data"]) for _, fields in entries]
            sweeps = [m for m in messages if m["task_name"] == "deposits.sweep"]
            time.sleep(0.2)
        assert sweeps, read_log(log)[-3000:]
        message = sweeps[0]
        assert (message["args"], message["kwargs"]) == ([], {})
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            client.delete(queue)
            client.close()
            output = read_log(log)
            log.close()
    assert code == 0, output[-3000:]
    # Every line one JSON object with a level, taskiq's own lines too: what the log shipper
    # parses (docker/alloy/config.alloy). A plain-text line fails json.loads here.
    lines = [json.loads(line) for line in output.splitlines()]
    assert any("deposits.sweep" in line["event"] for line in lines), output[-3000:]
    assert all(line["level"] in {"debug", "info", "warning", "error"} for line in lines)
