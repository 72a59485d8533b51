"""The Kubernetes manifests keep SPEC §5's promises, on what kustomize really renders.

`make config-check` validates every object against the Kubernetes schemas; this checks what a
schema cannot: probes on the health routes, a grace period above the shutdown bounds, one
scheduler, non-root read-only containers, secrets referenced and never inlined, Postgres and
Redis reachable from the application's pods only, no /metrics on the public ingress.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[3]
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = ["deploy/k8s/base", "deploy/k8s/overlays/demo"]


def _render(overlay: str) -> list[dict[str, Any]]:
    rendered = subprocess.run(  # noqa: S603 - kubectl kustomize, offline
        [str(KUBECTL), "kustomize", str(ROOT / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in _render(request.param)}


def _pods(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = ("Deployment", "StatefulSet", "Job")
    return {name: o["spec"]["template"] for (kind, name), o in objects.items() if kind in kinds}


def test_the_api_is_probed_on_its_health_routes_and_drains_before_it_stops(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod = objects[("Deployment", "api")]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    pause = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    settings = Settings()
    bounds = pause + settings.DRAIN_SECONDS + settings.GRACEFUL_SHUTDOWN_SECONDS
    assert pod["terminationGracePeriodSeconds"] > bounds
    worker = objects[("Deployment", "worker")]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > settings.WORKER_SHUTDOWN_SECONDS
    assert api["resources"]["limits"]["memory"]
    assert api["resources"]["requests"]["cpu"]


def test_one_scheduler_replaced_never_overlapping_and_the_api_never_below_two(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    scheduler = objects[("Deployment", "scheduler")]["spec"]
    assert scheduler["replicas"] == 1
    assert scheduler["strategy"]["type"] == "Recreate"
    assert ("HorizontalPodAutoscaler", "scheduler") not in objects
    assert objects[("HorizontalPodAutoscaler", "api")]["spec"]["minReplicas"] >= 2
    budget = objects[("PodDisruptionBudget", "api")]["spec"]
    assert budget["minAvailable"] >= 1


def test_every_container_runs_non_root_read_only_without_capabilities(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name, pod in _pods(objects).items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "limits" in container["resources"], name


def test_secrets_are_referenced_and_never_inlined(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert not [key for key in objects if key[0] == "Secret"]
    config = objects[("ConfigMap", "ledger-config")]["data"]
    assert not [key for key in config if any(w in key for w in ("SECRET", "PASSWORD", "KEY"))]
    for name, pod in _pods(objects).items():
        volumes = pod["spec"].get("volumes", [])
        mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        expected = {"ledger-secrets"} if name != "redis" else set()
        assert mounted == expected, name


def test_the_data_stores_answer_the_application_only(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert objects[("NetworkPolicy", "default-deny-ingress")]["spec"]["podSelector"] == {}
    app_pods = {
        name
        for name, pod in _pods(objects).items()
        if pod["metadata"]["labels"].get("ledger.example.com/database-client") == "true"
    }
    assert {"api", "worker", "scheduler", "migrate"} <= app_pods
    assert not app_pods & {"postgres", "redis"}
    for store in ("postgres", "redis"):
        policy = objects.get(("NetworkPolicy", f"{store}-from-the-app-only"))
        if ("StatefulSet", store) in objects or ("Deployment", store) in objects:
            assert policy is not None, f"{store} runs here without a policy"
            (rule,) = policy["spec"]["ingress"]
            assert rule["from"] == [
                {"podSelector": {"matchLabels": {"ledger.example.com/database-client": "true"}}}
            ]


def test_the_ingress_routes_the_public_paths_only(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    ingress = objects[("Ingress", "api")]["spec"]
    paths = {p["path"] for rule in ingress["rules"] for p in rule["http"]["paths"]}
    assert "/api/" in paths
    assert not [p for p in paths if p.startswith(("/metrics", "/health"))]
    assert ingress["tls"], "HTTPS at the ingress"
    prefixes = [
        p["path"] for rule in ingress["rules"] for p in rule["http"]["paths"]
        if p["pathType"] == "Prefix"
    ]  # fmt: skip
    assert "/" not in prefixes  # a "/" prefix would route /metrics too
