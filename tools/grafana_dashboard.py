"""The Grafana dashboard, built with Grafana's own SDK (grafana-foundation-sdk, from its schemas).

`python tools/grafana_dashboard.py` writes docker/grafana/dashboards/ledger.json; with `--check`
it fails if the file differs from what this code builds (make config-check runs that). Every
metric query is PromQL over the metrics of SPEC §7, on the Prometheus datasource that
docker/grafana/provisioning/datasources/ provisions with the uid below; `QUERIES` lists them,
so the alert drill can run each against a real Prometheus. The last row reads the logs from
Loki: its LogQL (`LOG_QUERIES`) is parsed by Grafana's own LogQL grammar
(tools/logql/check.mjs), and the labels and fields it selects on are the ones
docker/alloy/config.alloy makes from the app's real lines (tests/e2e/test_logs.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, logs, loki, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docker" / "grafana" / "dashboards" / "ledger.json"
PROMETHEUS_UID = "prometheus"
SOURCE = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
LOKI = DataSourceRef(type_val="loki", uid="loki")

# (panel title, unit, [(legend, PromQL)]); one row of panels per tuple of this list's groups.
Query = tuple[str, str]
Panel = tuple[str, str, list[Query]]
ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Requests (RED)",
        [
            (
                "Request rate",
                "reqps",
                [("{{handler}}", 'sum by (handler) (rate(http_requests_total{job="api"}[5m]))')],
            ),
            (
                "Error ratio (5xx)",
                "percentunit",
                # 0, not "no data", while nothing failed: a 5xx series exists only after one.
                [
                    (
                        "5xx",
                        "(job:http_requests_5xx:rate2m or job:http_requests:rate2m * 0)"
                        " / job:http_requests:rate2m",
                    )
                ],
            ),
            (
                "Latency per route",
                "s",
                [
                    (
                        f"p{quantile} {{{{handler}}}}",
                        f"histogram_quantile({quantile / 100}, sum by (handler, le) "
                        '(rate(http_request_duration_seconds_bucket{job="api"}[5m])))',
                    )
                    for quantile in (50, 95, 99)
                ],
            ),
        ],
    ),
    (
        "Money",
        [
            (
                "Payments by outcome",
                "ops",
                [("{{outcome}}", "sum by (outcome) (rate(ledger_payments_total[5m]))")],
            ),
            (
                "Deposits by outcome",
                "ops",
                [("{{outcome}}", "sum by (outcome) (rate(ledger_deposits_total[5m]))")],
            ),
            (
                "Idempotent replays",
                "ops",
                [("{{endpoint}}", "sum by (endpoint) (rate(ledger_idempotent_replays_total[5m]))")],
            ),
        ],
    ),
    (
        "Protection",
        [
            (
                "Cache hit ratio",
                "percentunit",
                [
                    (
                        "{{cache}}",
                        'sum by (cache) (rate(ledger_cache_requests_total{result="hit"}[5m]))'
                        " / sum by (cache) (rate(ledger_cache_requests_total[5m]))",
                    )
                ],
            ),
            (
                "Rate-limited requests",
                "reqps",
                [("{{limit}}", "sum by (limit) (rate(ledger_rate_limited_total[5m]))")],
            ),
            (
                "Database pool",
                "short",
                [
                    ("in use {{instance}}", "ledger_db_pool_in_use"),
                    ("size {{instance}}", "ledger_db_pool_size"),
                ],
            ),
        ],
    ),
    (
        "Workers",
        [
            (
                "Task throughput",
                "ops",
                [("{{task}}", 'sum by (task) (rate(ledger_tasks_total{job="worker"}[5m]))')],
            ),
            (
                "Task failures",
                "ops",
                [
                    (
                        "{{task}}",
                        "sum by (task) "
                        '(rate(ledger_tasks_total{job="worker", outcome="error"}[5m]))'
                        ' or sum by (task) (rate(ledger_tasks_total{job="worker"}[5m])) * 0',
                    )
                ],
            ),
            (
                "Task duration p95",
                "s",
                [
                    (
                        "{{task}}",
                        "histogram_quantile(0.95, sum by (task, le) "
                        '(rate(ledger_task_duration_seconds_bucket{job="worker"}[5m])))',
                    )
                ],
            ),
            ("Queue backlog", "short", [("stream", 'max(ledger_queue_backlog{job="worker"})')]),
        ],
    ),
]
QUERIES: list[str] = [expr for _, panels in ROWS for _, _, queries in panels for _, expr in queries]

# The services whose lines are ours (JSON, with `level` and `request_id`), as Alloy labels them.
APP_SERVICES = '{service=~"api|worker|scheduler"}'
# (panel title, LogQL): the last row. `$request_id` is the dashboard's text box.
LOG_PANELS: list[tuple[str, str]] = [
    ("Warnings and errors", APP_SERVICES[:-1] + ', level=~"warning|error|critical"}'),
    ("One request across api and worker (paste its X-Request-ID above)",
     APP_SERVICES + ' | request_id="$request_id"'),
]  # fmt: skip
LOG_QUERIES: list[str] = [expr for _, expr in LOG_PANELS]


def build() -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("fastapi-ledger")
        .uid("fastapi-ledger")
        .tags(["fastapi-ledger"])
        .time("now-1h", "now")
        .refresh("30s")
    )
    for row_title, panels in ROWS:
        board = board.with_row(dashboard.Row(row_title))
        for title, unit, queries in panels:
            panel = (
                timeseries.Panel()
                .title(title)
                .unit(unit)
                .datasource(SOURCE)
                .height(8)
                .span(24 // len(panels))
            )
            for ref, (legend, expr) in zip("ABCDEFGH", queries, strict=False):
                panel = panel.with_target(
                    prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
                )
            board = board.with_panel(panel)
    board = board.with_variable(
        dashboard.TextBoxVariable("request_id")
        .label("request id")
        .description("An X-Request-ID: the last log row shows every line it wrote, api and worker")
    )
    board = board.with_row(dashboard.Row("Logs"))
    for title, expr in LOG_PANELS:
        board = board.with_panel(
            logs.Panel()
            .title(title)
            .datasource(LOKI)
            .height(10)
            .span(24 // len(LOG_PANELS))
            .with_target(loki.Dataquery().expr(expr).ref_id("A"))
        )
    model: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return model


def render() -> str:
    """The file's text: stable key order, two-space indent, a final newline."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def as_rules() -> str:
    """Every query as a recording rule, so `promtool check rules` parses each one offline."""
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(QUERIES)]
    return json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]}, indent=2)


def main(argv: list[str]) -> int:
    """Write the dashboard; with --check, exit 1 if the committed file is not what is built.

    With --as-rules, print the queries as a rule file (JSON is YAML) for promtool instead.
    """
    if "--as-rules" in argv:
        print(as_rules())
        return 0
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python tools/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
