"""The layout rules stay true as modules are added: every module is registered and contracted."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from app.models import MODEL_MODULES

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"


def _domain_modules() -> set[str]:
    return {
        f"app.{path.parent.name}"
        for path in APP.glob("*/__init__.py")
        if path.parent.name not in {"core"}
    }


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_every_models_file_is_registered_for_alembic() -> None:
    on_disk = {f"app.{path.parent.name}.models" for path in APP.glob("*/models.py")}
    assert on_disk == set(MODEL_MODULES)


def test_every_domain_module_is_under_the_layering_contracts() -> None:
    contracts = {contract["name"]: contract for contract in _contracts()}
    layered = contracts["inside a module: router -> service -> repository -> models"]
    private = contracts[
        "modules talk to each other through service, schemas, dependencies and errors only"
    ]
    core = contracts["core is the bottom layer: it imports no domain module"]
    domain = _domain_modules()
    assert set(layered["containers"]) == domain
    assert set(private["domain_modules"]) == domain
    assert domain <= set(core["forbidden_modules"])


# Where the environment's settings may be read: the entry points build them once and hand them
# down (create_app -> app.state.settings -> SettingsDep; the worker's state; the CLI's
# arguments). Services, repositories, routers, dependencies and tasks are handed them. The
# others read process-wide values no caller hands them: the broker (taskiq needs it at import
# time), the problem type's prefix and the cursor's signing key (core's renderers, reached
# from anywhere), the default request bounds, and a request body's validator (the currencies).
_READS_SETTINGS = {
    "app/main.py",
    "app/server.py",
    "app/cli.py",
    "app/worker.py",
    "app/run_worker.py",
    "app/scheduler.py",
    "app/core/config.py",
    "app/core/broker.py",
    "app/core/errors.py",
    "app/core/pagination.py",
    "app/core/http_protocol.py",
    "app/accounts/schemas.py",
}


def test_domain_code_is_handed_its_settings_and_never_reads_them() -> None:
    reading = {
        str(path.relative_to(ROOT))
        for path in APP.rglob("*.py")
        if "get_settings(" in path.read_text(encoding="utf-8")
    }
    assert reading <= _READS_SETTINGS, sorted(reading - _READS_SETTINGS)
