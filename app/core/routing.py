"""Routers registered flat on the app: each request is matched against plain routes, once.

Since FastAPI 0.137, `include_router` keeps the included router as a node that is resolved on
every request: the path is tried against every route of every included router, with no check
of the router's prefix (fastapi/fastapi#16159, open), and the match is done twice — once to
select the node, once inside it. With this project's ~30 routes that cost 50-90 µs a match,
as much as a whole request of the bare app (docs/performance.md). `include_flat` registers a
module router's routes directly on the app instead, as `include_router` did before 0.137:
the same operations, paths, tags and responses (the OpenAPI drift test holds), and the app's
dependency overrides apply to them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

# Every option of `add_api_route` that an APIRoute keeps as an attribute of the same name.
_ROUTE_OPTIONS = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "methods",
    "operation_id",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "include_in_schema",
    "response_class",
    "name",
    "callbacks",
    "openapi_extra",
    "generate_unique_id_function",
    "strict_content_type",
    "max_body_size",
)


def include_flat(app: FastAPI, router: APIRouter, *, prefix: str = "") -> None:
    """Add each route of `router` to `app` under `prefix`, as a plain route of the app."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes path operations only, not {route!r}")
        options: dict[str, Any] = {name: getattr(route, name) for name in _ROUTE_OPTIONS}
        if route.form_limits:
            options["form_limits"] = route.form_limits
        app.router.add_api_route(prefix + route.path, route.endpoint, **options)
