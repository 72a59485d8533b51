"""A real uvicorn process: probes, the error shape, JSON logs, clean exit, config refusal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.conftest import ROOT, Server, free_port, start_server


def test_probes_errors_and_logs_of_a_real_process(server: Server) -> None:
    live = httpx.get(f"{server.base_url}/health/live")
    ready = httpx.get(f"{server.base_url}/health/ready")
    missing = httpx.get(
        f"{server.base_url}/api/v1/nothing", headers={"X-Request-ID": "e2e-req-0001"}
    )
    assert live.status_code == 200
    assert ready.status_code == 200
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["request_id"] == "e2e-req-0001"

    code, err = server.stop()
    assert code == 0, err  # app.server ends a SIGTERM'd run cleanly (plain uvicorn: -15)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert len(lines) == len(err.splitlines()), "every line is JSON"
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers  # uvicorn's own lines go through our pipeline
    (access,) = [line for line in lines if line.get("request_id") == "e2e-req-0001"]
    assert access["status"] == 404
    assert access["event"] == "request"
    events = [line["event"] for line in lines]
    assert events.index("shutdown_complete") < events.index("Application shutdown complete.")


def test_invalid_configuration_stops_start_up_with_one_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.server"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "ENVIRONMENT": "production",
            "SECRET_KEY": "Zq3v8L1pX0bN7wR2tY5uE9iO4aS6dF_hJkMn-GcVxB7e",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Invalid configuration:" in result.stderr
    assert "SECRET_KEY is a default or known-weak value" not in result.stderr
    assert "FIRST_ADMIN_PASSWORD is the default value" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("migrated_database")
def test_make_run_supervisor_says_where_the_docs_are_and_stops_at_once_on_ctrl_c() -> None:
    port = free_port()
    running = start_server([sys.executable, "-m", "app.cli", "run"], port, env={"PORT": str(port)})
    assert httpx.get(f"{running.base_url}/health/ready").status_code == 200
    deadline = time.monotonic() + 10
    while f"open http://127.0.0.1:{port}/docs" not in running.output():
        assert time.monotonic() < deadline, running.output()
        time.sleep(0.1)
    assert "Authorize as demo@example.com / demo-password-2026" in running.output()
    running.process.send_signal(signal.SIGINT)  # as Ctrl-C sends it
    code, err = running.wait(timeout=30)
    assert code == 0, err
    assert "shutdown_complete" in err
    # Outside production Ctrl-C skips the drain a load balancer would need (SIGTERM keeps it).
    assert "draining" not in err
    assert "SIGTERM" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.base_url}/health/live", timeout=1)
