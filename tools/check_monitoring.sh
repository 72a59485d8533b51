#!/bin/sh
# Offline checks of the monitoring configuration, each with its own ecosystem's tool:
# Prometheus' config and rules (promtool check), the rules' unit tests (promtool test rules),
# the Grafana dashboard (built by Grafana's SDK; its queries parsed by promtool),
# Alertmanager's config with its templates (amtool check-config) and where each kind of alert
# is routed (amtool config routes test). make config-check runs it.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AMTOOL="$ROOT/.cache/alertmanager/usr/bin/amtool"
cd "$ROOT/docker/prometheus"
promtool check config --lint=all prometheus.yml
promtool check rules --lint=all rules/*.yml
promtool test rules tests/*.test.yml
# The dashboard: the committed file is what Grafana's SDK builds, and every query parses.
"$ROOT/.venv/bin/python" "$ROOT/tools/grafana_dashboard.py" --check
QUERIES=$(mktemp --suffix=.yml)
trap 'rm -f "$QUERIES"' EXIT
"$ROOT/.venv/bin/python" "$ROOT/tools/grafana_dashboard.py" --as-rules > "$QUERIES"
promtool check rules "$QUERIES"
cd "$ROOT/docker/alertmanager"
"$AMTOOL" check-config alertmanager.yml
# receiver  labels of an alert: pages reach the phone (Telegram) and Slack, tickets Slack only.
while read -r receiver labels; do
    case "$receiver" in ''|'#'*) continue ;; esac
    # shellcheck disable=SC2086 # the labels are separate words on purpose
    "$AMTOOL" config routes test --config.file=alertmanager.yml \
        --verify.receivers="$receiver" $labels >/dev/null 2>&1 || {
        echo "alert {$labels} is not routed to $receiver:" >&2
        "$AMTOOL" config routes test --config.file=alertmanager.yml $labels >&2
        exit 1
    }
    echo "routes: {$labels} -> $receiver"
done < routes.txt
