"""The log pipeline's inputs, proven on real processes: what Alloy extracts, the app writes.

Loki and Alloy cannot run here, so this test takes the pieces each one relies on and checks
them against what a real API and a real worker print: the fields docker/alloy/config.alloy
extracts from each JSON line, the labels and structured metadata it makes of them, and the
LogQL in README.md that follows one request (its syntax is checked by Grafana's own LogQL
grammar in `make config-check`). One deposit with a known X-Request-ID, then the lines a
`{service=~"api|worker"} | request_id="<id>"` query would return, from both processes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    ROOT,
    Server,
    free_port,
    new_customer,
    request_deposit,
    start_app_server,
)
from tests.e2e.test_worker import Worker

ALLOY = ROOT / "docker" / "alloy" / "config.alloy"
LOKI = ROOT / "docker" / "loki" / "loki.yaml"
DATASOURCES = ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
STRUCTLOG_LEVELS = {"debug", "info", "warning", "error", "critical"}


def _block(text: str, header: str) -> str:
    """The body of the first `header { ... }` block of an Alloy file (braces balanced)."""
    start = text.index(header + " {") + len(header) + 2
    depth, at = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[at], 0)
        at += 1
    return text[start : at - 1]


def _keys(text: str, header: str, attribute: str) -> set[str]:
    """The keys of the object `attribute = { key = "", ... }` inside the block `header`."""
    body = _block(text, header)
    inner = _block(body, f"{attribute} =")
    return set(re.findall(r"^\s*(\w+)\s*=", inner, re.MULTILINE))


@pytest.fixture(scope="module")
def pipeline() -> dict[str, set[str]]:
    """What docker/alloy/config.alloy extracts, labels and attaches, read from the file."""
    text = re.sub(r"//[^\n]*", "", ALLOY.read_text())  # comments may hold braces
    relabel = _block(text, 'discovery.relabel "compose"')
    return {
        "extracted": _keys(text, "stage.json", "expressions"),
        "labels": _keys(text, "stage.labels", "values")
        | set(re.findall(r'target_label\s*=\s*"(\w+)"', relabel)),
        "metadata": _keys(text, "stage.structured_metadata", "values"),
    }


def _readme_query() -> str:
    blocks = re.findall(r"^```logql\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    assert len(blocks) == 1, blocks
    return str(blocks[0]).strip()


def test_the_readme_query_selects_on_what_the_pipeline_makes(
    pipeline: dict[str, set[str]],
) -> None:
    query = _readme_query()
    selector = re.fullmatch(r"\{(.*?)\}\s*\|\s*(\w+)=\"<[^>]+>\"", query)
    assert selector, query
    labels = set(re.findall(r"(\w+)\s*=~?", selector.group(1)))
    assert labels == {"service"} <= pipeline["labels"]
    # The request id is filtered on as structured metadata, which only a field can be: as a
    # label it would make a stream per request.
    assert selector.group(2) == "request_id"
    assert "request_id" in pipeline["metadata"] & pipeline["extracted"]
    assert "request_id" not in pipeline["labels"]
    assert {"level", "service"} <= pipeline["labels"]
    assert {"level", "timestamp"} <= pipeline["extracted"]


def test_loki_takes_what_alloy_sends_where_grafana_reads_it() -> None:
    loki = yaml.safe_load(LOKI.read_text())
    port = loki["server"]["http_listen_port"]
    pushes = re.findall(r'url\s*=\s*"([^"]+)"', _block(ALLOY.read_text(), 'loki.write "loki"'))
    assert pushes == [f"http://loki:{port}/loki/api/v1/push"]
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [s["url"] for s in sources if s["type"] == "loki"] == [f"http://loki:{port}"]
    # Structured metadata (request_id) is refused unless allowed, and needs schema v13 or later.
    assert loki["limits_config"]["allow_structured_metadata"] is True
    newest = max(loki["schema_config"]["configs"], key=lambda period: str(period["from"]))
    assert newest["store"] == "tsdb"
    assert int(newest["schema"].removeprefix("v")) >= 13


@pytest.fixture
def api(migrated_database: str) -> Iterator[tuple[Server, str]]:
    queue = f"ledger:test-tasks:{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = start_app_server(port, env={"TASK_QUEUE": queue, "LOG_FORMAT": "json"})
    yield server, queue
    server.stop()


def _lines(output: str) -> list[dict[str, object]]:
    """Every line the process printed, each parsed as JSON (a line that is not fails)."""
    parsed = []
    for line in output.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line, Loki would get it unparsed: {line!r}")
    return parsed


def _as_alloy_reads(line: dict[str, object], extracted: set[str]) -> dict[str, object]:
    """stage.json: the extracted fields that are present, as strings."""
    return {key: str(line[key]) for key in extracted if key in line}


def test_one_request_is_followed_across_api_and_worker(
    api: tuple[Server, str], pipeline: dict[str, set[str]]
) -> None:
    server, queue = api
    request_id = f"logs-e2e-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        worker = Worker(queue, LOG_FORMAT="json")
        try:
            deposit = request_deposit(
                client, auth, account_id, 5000, **{"X-Request-ID": request_id}
            )
            worker.wait_for_receipt(deposit)  # logged once its email_sent line is written
            status = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()["status"]
        finally:
            code = worker.stop()
    assert status == "succeeded", worker.output[-5000:]
    assert code == 0, worker.output[-5000:]
    time.sleep(0.2)  # the API's access line is written after the response
    by_service = {"api": _lines(server.output()), "worker": _lines(worker.output)}

    found: dict[str, list[str]] = {}
    for service, lines in by_service.items():
        for line in lines:
            fields = _as_alloy_reads(line, pipeline["extracted"])
            # `level` becomes a label: every line has one, from a handful of values.
            assert fields.get("level") in STRUCTLOG_LEVELS, line
            # stage.timestamp (RFC 3339): the time the line was written, not read.
            datetime.fromisoformat(str(fields["timestamp"]))
            if fields.get("request_id") == request_id:
                found.setdefault(service, []).append(str(line["event"]))

    # What `{service=~"api|worker"} | request_id="<id>"` returns: the API's access line for
    # the POST, and the worker's lines for the deposit's charge and its receipt.
    assert "request" in found.get("api", []), found
    assert {"deposit_charging", "email_sent"} <= set(found.get("worker", [])), found
