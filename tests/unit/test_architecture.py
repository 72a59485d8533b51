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
