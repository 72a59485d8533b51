"""The custom import-linter contract really catches a cross-module reach into internals."""

from __future__ import annotations

import grimp

from tools.import_contracts import ModulePrivacyContract


def _check(*imports: tuple[str, str]) -> list[str]:
    graph = grimp.ImportGraph()
    for module in ("app", "app.a", "app.a.service", "app.a.repository", "app.b", "app.b.router"):
        graph.add_module(module)
    graph.add_module("app.b.service")
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="")
    contract = ModulePrivacyContract(
        name="privacy",
        session_options={},
        contract_options={
            "domain_modules": ["app.a", "app.b"],
            "public_submodules": ["service", "schemas"],
        },
    )
    check = contract.check(graph, verbose=False)
    violations: list[str] = check.metadata["violations"]
    assert check.kept == (not violations)
    return violations


def test_reaching_into_another_modules_repository_is_a_violation() -> None:
    assert _check(("app.b.router", "app.a.repository")) == ["app.b.router imports app.a.repository"]


def test_another_modules_service_and_own_internals_are_allowed() -> None:
    assert _check(("app.b.router", "app.a.service"), ("app.a.service", "app.a.repository")) == []


def test_importing_another_modules_package_itself_is_allowed() -> None:
    assert _check(("app.b.router", "app.a")) == []
