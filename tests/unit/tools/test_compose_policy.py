"""compose.yaml keeps the demo's promises: one way in, private data stores, secrets as files.

The compose-spec schema and the reference checker say the file is well formed; this says it
is safe and consistent with the rest of the project (SPEC §5, §3 Security).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from tools import make_secrets

ROOT = Path(__file__).resolve().parents[3]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("api", "worker", "scheduler", "migrate", "backup")


def _networks(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks", [])
    return set(networks) if isinstance(networks, list | dict) else set()


def test_caddy_is_the_only_way_in() -> None:
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"caddy"}
    assert sorted(SERVICES["caddy"]["ports"]) == ["443:443", "80:80"]
    for name, service in SERVICES.items():
        assert not service.get("expose") or name == "caddy", name
        assert service.get("network_mode") != "host", name


def test_postgres_and_redis_live_on_the_internal_network_only() -> None:
    assert COMPOSE["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis", "postgres-exporter", "redis-exporter", "loki"):
        assert _networks(SERVICES[name]) == {"backend"}, name


def test_metrics_are_not_served_through_the_proxy() -> None:
    caddyfile = (ROOT / "docker" / "caddy" / "Caddyfile").read_text()
    assert re.search(r"@metrics path /metrics /metrics/\*\s+respond @metrics 404", caddyfile)
    # Caddy proxies the api, Grafana and Mailpit: neither Prometheus nor an exporter.
    upstreams = set(re.findall(r"(?:reverse_proxy|dynamic a) \{\$\w+:([\w-]+)", caddyfile))
    assert upstreams == {"api", "grafana", "mailpit"}


def test_secrets_are_files_made_by_make_secrets_and_never_literal(tmp_path: Path) -> None:
    made = set(make_secrets.generate(tmp_path))
    assert set(COMPOSE["secrets"]) == made
    for name, secret in COMPOSE["secrets"].items():
        assert secret == {"file": f".secrets/{name}"}
    # No service gets a secret as a plain environment value, only as a file's path.
    for name, service in SERVICES.items():
        for key in service.get("environment", {}):
            if re.search(r"PASS|SECRET|TOKEN|KEY|DSN", key):
                assert key.endswith("_FILE"), f"{name}: {key} in the environment"
    # Every file the app reads is a setting of its own, named as pydantic-settings expects.
    app_secrets = set(SERVICES["api"]["secrets"])
    assert app_secrets <= set(Settings.model_fields), app_secrets - set(Settings.model_fields)
    assert make_secrets.generate(tmp_path) == []  # a second run keeps every file


def test_alertmanager_reads_its_tokens_from_the_secrets_compose_mounts() -> None:
    config = yaml.safe_load((ROOT / "docker" / "alertmanager" / "alertmanager.yml").read_text())
    files = {
        Path(value).name
        for receiver in config["receivers"]
        for kind in ("telegram_configs", "slack_configs")
        for entry in receiver.get(kind, [])
        for key, value in entry.items()
        if key.endswith("_file")
    }
    assert files <= set(SERVICES["alertmanager"]["secrets"]), files


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_container_is_locked_down_and_waits_for_the_migrations(name: str) -> None:
    service = SERVICES[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    if name != "migrate":
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_stop_grace_periods_exceed_the_shutdown_bounds() -> None:
    settings = Settings()
    seconds = {
        name: int(SERVICES[name]["stop_grace_period"].removesuffix("s"))
        for name in ("api", "worker")
    }
    assert seconds["api"] > settings.DRAIN_SECONDS + settings.GRACEFUL_SHUTDOWN_SECONDS
    assert seconds["worker"] > settings.WORKER_SHUTDOWN_SECONDS
    assert SERVICES["api"]["deploy"]["replicas"] >= 2
    assert SERVICES["scheduler"]["deploy"]["replicas"] == 1


def test_the_trusted_proxy_is_caddys_fixed_address() -> None:
    address = SERVICES["caddy"]["networks"]["edge"]["ipv4_address"]
    assert SERVICES["api"]["environment"]["TRUSTED_PROXIES"] == address
    subnet = COMPOSE["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert address.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]


def test_every_mounted_project_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
