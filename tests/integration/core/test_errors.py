"""Every kind of error leaves the API in one shape: the project's code + an RFC 9457 problem."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient
from pydantic import BaseModel, Field

from app.core.errors import FieldError, NotFoundError, RateLimitedError, ValidationFailedError
from tests.assertions import problem
from tests.conftest import LogReader
from tests.integration.conftest import http_client, started_app

SECRET_IN_EXCEPTION = "password=hunter2 SELECT * FROM users"


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    amount: int = Field(gt=0)


probe = APIRouter(prefix="/probe")


@probe.post("/items", status_code=201)
async def create_item(item: ItemCreate) -> ItemCreate:
    return item


@probe.get("/boom")
async def boom() -> None:
    raise RuntimeError(SECRET_IN_EXCEPTION)


@probe.get("/missing")
async def missing() -> None:
    raise NotFoundError


@probe.get("/rule")
async def rule() -> None:
    raise ValidationFailedError(
        "Amount too large.", fields=[FieldError(field="body.amount", message="too big", type="x")]
    )


@probe.get("/limited")
async def limited() -> None:
    raise RateLimitedError(headers={"Retry-After": "7", "X-RateLimit-Limit": "100"})


@pytest.fixture(scope="module")
async def probe_app(migrated_database: str) -> AsyncIterator[FastAPI]:
    async with started_app(probe) as app:
        yield app


@pytest.fixture
async def http(probe_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with http_client(probe_app) as client:
        yield client


async def test_unknown_route_is_404_not_found(http: AsyncClient) -> None:
    problem(await http.get("/api/v1/nothing-here"), 404, "not_found")


async def test_wrong_method_is_405_with_allow_header(http: AsyncClient) -> None:
    response = await http.delete("/probe/items")
    problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


async def test_allow_lists_every_method_of_the_path(http: AsyncClient) -> None:
    # GET and POST /api/v1/accounts are two routes; the 405 must name both (schemathesis).
    response = await http.request("OPTIONS", "/api/v1/accounts")
    problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_an_undecodable_body_is_422_like_any_bad_body(http: AsyncClient) -> None:
    response = await http.post(
        "/probe/items", content=b"\xa5R\xb9", headers={"content-type": "application/json"}
    )
    body = problem(response, 422, "validation_error")
    assert body["fields"] == [
        {"field": "body", "message": "Unreadable body.", "type": "body_unparsable"}
    ]


async def test_schema_validation_is_422_with_fields(http: AsyncClient) -> None:
    response = await http.post("/probe/items", json={"name": "", "amount": -5})
    body = problem(response, 422, "validation_error")
    assert body["fields"] == [
        {
            "field": "body.name",
            "message": "String should have at least 1 character",
            "type": "string_too_short",
        },
        {
            "field": "body.amount",
            "message": "Input should be greater than 0",
            "type": "greater_than",
        },
    ]


async def test_validation_error_never_echoes_the_input(http: AsyncClient) -> None:
    response = await http.post("/probe/items", json={"name": "x" * 50, "amount": "4111 1111"})
    problem(response, 422, "validation_error")
    assert "4111" not in response.text
    assert "xxxxxxxxxxx" not in response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"name": "a", "amount": ', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"name=a&amount=1", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_bodies_are_422_never_500(
    http: AsyncClient, content: bytes, content_type: str
) -> None:
    response = await http.post(
        "/probe/items", content=content, headers={"content-type": content_type}
    )
    problem(response, 422, "validation_error")


async def test_app_error_renders_its_code_and_status(http: AsyncClient) -> None:
    body = problem(await http.get("/probe/missing"), 404, "not_found")
    assert body["detail"] == "The requested resource was not found."


async def test_domain_validation_error_carries_fields(http: AsyncClient) -> None:
    body = problem(await http.get("/probe/rule"), 422, "validation_error")
    assert body["fields"] == [{"field": "body.amount", "message": "too big", "type": "x"}]


async def test_unhandled_exception_is_a_bare_500_and_is_logged_once(
    http: AsyncClient, log_lines: LogReader
) -> None:
    response = await http.get("/probe/boom")
    body = problem(response, 500, "internal_error")
    assert set(body) == {"type", "title", "status", "error", "detail", "request_id"}
    for leak in ("hunter2", "SELECT", "RuntimeError", "Traceback", "boom"):
        assert leak not in response.text

    lines = log_lines()
    errors = [line for line in lines if line["event"] == "unhandled_exception"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == body["request_id"]
    assert errors[0]["level"] == "error"
    assert "Traceback" in str(errors[0]["exception"])
    assert "hunter2" in str(errors[0]["exception"])  # the log keeps what the client must not see
    access = [line for line in lines if line["event"] == "request"]
    assert access[-1]["status"] == 500


async def test_rate_limited_is_429_with_its_headers(http: AsyncClient) -> None:
    response = await http.get("/probe/limited")
    problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "100"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/%"),
        ("GET", "/health/live/../../etc/passwd"),
        ("GET", "/api/v1/" + "a" * 5000),
        ("GET", "/health/%00"),
        ("POST", "/health/live"),
        ("TRACE", "/health/ready"),
        ("GET", "/probe/items?amount=%ff%fe"),
    ],
)
async def test_odd_requests_get_a_problem_never_a_500(
    http: AsyncClient, method: str, url: str
) -> None:
    response = await http.request(method, url)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == response.status_code
