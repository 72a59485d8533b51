"""openapi.yaml is the contract: the app's generated schema must mean the same thing.

The comparison is semantic: `$ref`s are resolved, free text (titles, descriptions, examples,
summaries, tags) is ignored, and lists whose order carries no meaning are sorted. What remains —
paths, methods, operation ids, parameters, request bodies, status codes, media types and
schemas — must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.errors import AppError, all_error_codes
from app.core.openapi import build_openapi
from app.main import API_PREFIX, create_app

CONTRACT = Path(__file__).resolve().parents[2] / "openapi.yaml"
FREE_TEXT = {"title", "description", "summary", "example", "examples", "tags", "externalDocs"}
UNORDERED = {"required", "enum"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _resolve(node: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline every $ref and drop free text, so two documents can be compared as values."""
    if isinstance(node, list):
        return [_resolve(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:  # a recursive schema: compare by name from here on
            return {"$recursive": ref.rsplit("/", 1)[-1]}
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(target, document, (*seen, ref))
    resolved: dict[str, Any] = {}
    for key, value in node.items():
        if key in FREE_TEXT:
            continue
        value = _resolve(value, document, seen)
        if key in UNORDERED and isinstance(value, list):
            value = sorted(value, key=repr)
        resolved[key] = value
    return resolved


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    operations = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                operations[f"{method.upper()} {path}"] = operation
    return operations


def _semantic(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        f"{p['in']}:{p['name']}": _resolve(p, document) for p in operation.get("parameters", [])
    }
    return {
        "operationId": operation.get("operationId"),
        "parameters": parameters,
        "requestBody": _resolve(operation.get("requestBody"), document),
        "responses": {
            status: _resolve(response, document).get("content")
            for status, response in operation.get("responses", {}).items()
        },
        "security": operation.get("security"),
    }


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return build_openapi(create_app(), api_prefix=API_PREFIX)


def test_same_operations(contract: dict[str, Any], generated: dict[str, Any]) -> None:
    assert sorted(_operations(generated)) == sorted(_operations(contract))


def test_each_operation_means_the_same(contract: dict[str, Any], generated: dict[str, Any]) -> None:
    ours = _operations(contract)
    for key, operation in _operations(generated).items():
        assert _semantic(generated, operation) == _semantic(contract, ours[key]), key


def test_same_security_schemes(contract: dict[str, Any], generated: dict[str, Any]) -> None:
    assert _resolve(generated["components"].get("securitySchemes"), generated) == _resolve(
        contract["components"].get("securitySchemes"), contract
    )


def test_every_error_code_is_listed(contract: dict[str, Any]) -> None:
    listed = contract["components"]["schemas"]["Problem"]["properties"]["error"]["enum"]
    assert sorted(listed) == all_error_codes()


def test_error_codes_are_stable_snake_case() -> None:
    for code in all_error_codes():
        assert code.isascii()
        assert code == code.lower()
        assert " " not in code
        assert "-" not in code
    assert AppError.code in all_error_codes()


def test_comparison_catches_drift(contract: dict[str, Any]) -> None:
    """The checker itself must see a changed status, schema or parameter."""
    operation = _operations(contract)["GET /health/ready"]
    baseline = _semantic(contract, operation)

    changed_status = {**operation, "responses": {**operation["responses"], "404": {}}}
    assert _semantic(contract, changed_status) != baseline

    with_param = {**operation, "parameters": [{"in": "query", "name": "x", "required": False}]}
    assert _semantic(contract, with_param) != baseline

    document = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    document["components"]["schemas"]["ReadinessRead"]["required"] = []
    assert _semantic(document, _operations(document)["GET /health/ready"]) != baseline

    reworded = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    reworded["components"]["schemas"]["ReadinessRead"]["description"] = "other words"
    assert _semantic(reworded, _operations(reworded)["GET /health/ready"]) == baseline
