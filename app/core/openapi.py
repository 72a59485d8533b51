"""OpenAPI generation: error responses in the problem shape, and every error code listed."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem, all_error_codes

_PROBLEM_REF = "#/components/schemas/Problem"
# Headers the endpoints enforce themselves, to answer a missing one with their own error code
# (400 idempotency_key_missing) rather than FastAPI's 422: still required in the contract.
REQUIRED_HEADERS = frozenset({"Idempotency-Key"})


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the given error statuses with the Problem body."""
    return {
        code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in status_codes
    }


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, post-processed so the document matches what the API really sends."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    for path_item in schema.get("paths", {}).values():
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


def install_openapi(app: FastAPI) -> None:
    """Serve the post-processed document at /openapi.json (cached after the first build)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
