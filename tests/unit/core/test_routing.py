"""The request path stays cheap by construction: flat routes, async dependencies only."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from app.core.docs import ASSETS_URL
from app.core.routing import include_flat
from app.main import create_app


def _dependencies(dependant: Dependant) -> Iterator[Any]:
    for child in dependant.dependencies:
        if child.call is not None:
            yield child.call
        yield from _dependencies(child)


def test_every_route_of_the_app_is_a_plain_route_matched_in_one_pass() -> None:
    app = create_app()
    # No included-router nodes: each one re-walks its routes on every request (ADR 0020).
    # The one mount, the docs' static files, comes last: no API request is matched against it.
    *routes, last = app.router.routes
    assert all(isinstance(route, Route) for route in routes)
    assert isinstance(last, Mount)
    assert last.path == ASSETS_URL
    paths = [route.path for route in app.router.routes if isinstance(route, APIRoute)]
    assert "/api/v1/accounts/{account_id}" in paths
    assert paths.index("/health/live") < paths.index("/api/v1/auth/login")


def test_every_dependency_is_async_so_none_takes_a_thread_hop() -> None:
    # FastAPI runs a plain `def` dependency in the thread pool: a hand-off per request for
    # what is usually an attribute read.
    sync = {
        f"{route.path}: {call.__qualname__}"
        for route in create_app().router.routes
        if isinstance(route, APIRoute)
        for call in _dependencies(route.dependant)
        if not (
            inspect.iscoroutinefunction(call)
            or inspect.isasyncgenfunction(call)
            or inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004
        )
    }
    assert sync == set()


def test_include_flat_keeps_the_operation_as_declared() -> None:
    router = APIRouter(prefix="/things", tags=["things"])

    @router.get("/{thing_id}", status_code=203, responses={404: {"description": "None"}})
    async def read_thing(thing_id: int) -> dict[str, int]:
        """Read a thing."""
        return {"id": thing_id}

    app = FastAPI()
    include_flat(app, router, prefix="/api")
    operation = app.openapi()["paths"]["/api/things/{thing_id}"]["get"]
    assert operation["tags"] == ["things"]
    assert operation["operationId"] == "read_thing_api_things__thing_id__get"
    assert operation["description"] == "Read a thing."
    assert set(operation["responses"]) == {"203", "404", "422"}


def test_include_flat_refuses_what_it_cannot_copy() -> None:
    router = APIRouter()
    router.include_router(APIRouter(), prefix="/nested")
    with pytest.raises(TypeError, match="path operations only"):
        include_flat(FastAPI(), router)
