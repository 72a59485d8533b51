"""Every alert is tested firing and not firing, is routed, and has its runbook section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "docker" / "prometheus" / "rules" / "ledger.yml"
TESTS = ROOT / "docker" / "prometheus" / "tests" / "ledger.test.yml"
ROUTES = ROOT / "docker" / "alertmanager" / "routes.txt"
RUNBOOK = ROOT / "docs" / "operations.md"


def _alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), "never shown firing"
    assert alerts - quiet == set(), "never shown quiet"


def test_every_alert_is_routed_by_its_severity_and_has_a_runbook_section() -> None:
    routed = ROUTES.read_text()
    headings = {
        line.removeprefix("### ").strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("### ")
    }
    for name, rule in _alerts().items():
        severity = rule["labels"]["severity"]
        assert severity in {"page", "ticket"}, name
        receiver = "pager" if severity == "page" else "tickets"
        assert re.search(rf"^{receiver}\s+alertname={name} severity={severity}\b", routed, re.M), (
            name
        )
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert name.lower() in headings, f"docs/operations.md has no section for {name}"
