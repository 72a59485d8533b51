"""The dashboard file is what Grafana's SDK builds, and shows what SPEC §7 asks for."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tools import grafana_dashboard

ROOT = Path(__file__).resolve().parents[3]
PROVISIONING = ROOT / "docker" / "grafana" / "provisioning"


def test_the_committed_dashboard_is_the_built_one() -> None:
    assert grafana_dashboard.main(["--check"]) == 0, "run: python tools/grafana_dashboard.py"


def test_every_panel_queries_a_provisioned_datasource() -> None:
    """Metric panels read the provisioned Prometheus, log panels the provisioned Loki."""
    sources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    uids = {source["type"]: source["uid"] for source in sources["datasources"]}
    board = json.loads(grafana_dashboard.OUTPUT.read_text())
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    for panel in panels:
        kind = "loki" if panel["type"] == "logs" else "prometheus"
        assert panel["datasource"] == {"type": kind, "uid": uids[kind]}, panel["title"]
        assert panel["targets"], panel["title"]
    log_queries = [
        target["expr"] for panel in panels if panel["type"] == "logs" for target in panel["targets"]
    ]
    assert log_queries == grafana_dashboard.LOG_QUERIES
    assert any("request_id" in expr for expr in log_queries)
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert "request_id" in variables
    titles = {panel["title"] for panel in panels}
    assert {
        "Request rate",
        "Error ratio (5xx)",
        "Latency per route",
        "Payments by outcome",
        "Deposits by outcome",
        "Cache hit ratio",
        "Rate-limited requests",
        "Task throughput",
        "Task failures",
        "Task duration p95",
        "Database pool",
    } <= titles
    expressions = " ".join(grafana_dashboard.QUERIES)
    for quantile in ("0.5,", "0.95,", "0.99,"):
        assert f"histogram_quantile({quantile}" in expressions
