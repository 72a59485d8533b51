"""The OpenAPI document: the contract served as written, and the app's own schema to check it.

`/openapi.json` serves `openapi.yaml`, the hand-written contract, with this deployment's
currencies filled in, so Swagger UI and ReDoc show its examples, error examples and response
headers (ADR 0023). `build_openapi` is FastAPI's schema of the code, post-processed to what the
API really sends; tests/unit/test_openapi_contract.py proves the two mean the same thing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem, all_error_codes

_PROBLEM_REF = "#/components/schemas/Problem"
# Headers the endpoints enforce themselves, to answer a missing one with their own error code
# (400 idempotency_key_missing, 400 invalid_signature) rather than FastAPI's 422: still
# required in the contract.
REQUIRED_HEADERS = frozenset({"Idempotency-Key", "PSP-Signature"})


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the given error statuses with the Problem body."""
    return {
        code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in status_codes
    }


def raw_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` documenting a JSON body that the endpoint reads itself.

    For an endpoint that must see the raw bytes first (a webhook verifies their signature
    before parsing): FastAPI then knows no body, so the schema is given here, inlined.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}


def build_openapi(app: FastAPI, *, api_prefix: str) -> dict[str, Any]:
    """FastAPI's schema, post-processed so the document matches what the API really sends.

    Under `api_prefix` any operation may also answer 429 (the per-client budget, counted before
    the route) and 503 (admission control), both added by middleware the routes cannot see.
    """
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"] in REQUIRED_HEADERS:
                    parameter["required"] = True
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    # FastAPI's own 422 (HTTPValidationError) is replaced: ours is a Problem.
                    response["content"] = _problem_content()
                    if status == "422":
                        response["description"] = "Unprocessable Content"
            if "requestBody" in operation:
                responses.setdefault(
                    "413", {"description": "Content Too Large", "content": _problem_content()}
                )
            responses.setdefault(
                "500", {"description": "Internal Server Error", "content": _problem_content()}
            )
            if path.startswith(api_prefix):
                for status, phrase in (
                    ("429", "Too Many Requests"),
                    ("503", "Service Unavailable"),
                ):
                    responses.setdefault(
                        status, {"description": phrase, "content": _problem_content()}
                    )
    schemas: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template=_components_ref()))
    schemas["Problem"]["properties"]["error"]["enum"] = all_error_codes()
    if "FieldError" not in schemas:
        schemas["FieldError"] = schemas["Problem"].pop("$defs")["FieldError"]
    return schema


def _components_ref() -> str:
    return "#/components/schemas/{model}"


CONTRACT = Path(__file__).resolve().parents[2] / "openapi.yaml"


@cache
def _contract(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    document: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    return document


def published_openapi(*, currencies: Sequence[str], contract: Path = CONTRACT) -> dict[str, Any]:
    """The contract as published here: each request's `currency` an enum of `currencies`."""
    document = copy.deepcopy(_contract(contract))
    schemas = document.get("components", {}).get("schemas", {})
    for item in document.get("paths", {}).values():
        for operation in item.values():
            content = (
                operation.get("requestBody", {}).get("content", {})
                if isinstance(operation, dict)
                else {}
            )
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                currency = (
                    schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}).get("currency")
                )
                if currency is not None:
                    currency["enum"] = list(currencies)
                    currency["examples"] = [currencies[0]]
    return document


def install_openapi(app: FastAPI, *, currencies: Sequence[str]) -> None:
    """Serve the contract at /openapi.json (read once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = published_openapi(currencies=currencies)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
