"""The docs a newcomer opens first: served offline, strict CSP, and a contract usable as-is."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.core.docs import _REDOC, ASSETS_URL, _page
from app.core.errors import AppError, all_error_codes
from app.core.http_headers import DOCS_CSP
from app.core.openapi import published_openapi
from app.deposits.signature import sign
from app.main import create_app
from tests.factories import idempotency_headers, open_account, signed_in_user
from tests.integration.conftest import http_client
from tests.production_settings import PRODUCTION

# Anything that would make the browser leave this origin: a scheme with a host, or `//host`.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:[a-z]+:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_nothing_from_elsewhere_and_run_no_inline_script(
    client: AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not EXTERNAL.search(html), html
    # Every script is a file of this origin; the one inline block is JSON, which never runs.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
    for attributes, body in scripts:
        assert 'type="application/json"' in attributes or (
            not body.strip() and "src=" in attributes
        )
    assert "'unsafe-inline'" not in DOCS_CSP.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers["content-security-policy"] == DOCS_CSP
    # Each asset the page names is served, from the packaged copy or our own folder.
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert asset.startswith(ASSETS_URL), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.content


def test_the_docs_config_block_cannot_be_closed_by_a_value() -> None:
    html = _page(
        _REDOC, title="t", assets="/a", config={"url": "</script><script>alert(1)</script>"}
    )
    assert "</script><script>alert" not in html
    assert html.count("</script>") == 3


async def test_root_leads_a_newcomer_to_the_docs(client: AsyncClient) -> None:
    response = await client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


async def test_production_keeps_root_a_404_and_forgets_sign_in_on_reload(
    migrated_database: str,
) -> None:
    values: dict[str, Any] = dict(PRODUCTION)
    application = create_app(Settings(**values))
    async with http_client(application) as client:
        root = await client.get("/")
        docs = await client.get("/docs")
    assert root.status_code == 404
    assert root.json()["error"] == "not_found"
    assert '"persistAuthorization":false' in docs.text


async def test_outside_production_sign_in_survives_a_reload(client: AsyncClient) -> None:
    assert '"persistAuthorization":true' in (await client.get("/docs")).text


async def test_the_published_document_is_the_contract_with_the_configured_currencies(
    client: AsyncClient, app: FastAPI
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    configured = Settings().SUPPORTED_CURRENCIES
    for name in ("AccountCreate", "PaymentCreate"):
        currency = schemas[name]["properties"]["currency"]
        assert currency["enum"] == configured
        assert currency["examples"] == [configured[0]]
    # The contract's own free text is what is served (the code's docstrings are not).
    assert "SignInWithEmail" in document["components"]["securitySchemes"]
    assert (
        "demo@example.com"
        in document["components"]["securitySchemes"]["SignInWithEmail"]["description"]
    )
    assert document["components"]["headers"]["Idempotent-Replayed"]


def test_every_error_example_is_a_real_answer() -> None:
    document = published_openapi(currencies=["EUR"])
    examples = document["components"]["examples"]
    assert examples
    by_code = _error_classes()
    for name, example in examples.items():
        body = example["value"]
        assert body["error"] in all_error_codes(), name
        assert body["type"].endswith(body["error"]), name
        assert body["status"] == by_code.get(body["error"], body["status"]), name
    # Every documented error response shows an example of its own status.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                response = _deref(document, response)
                if not status.startswith(("4", "5")):
                    continue
                media = response["content"]["application/problem+json"]
                named = media.get("examples", {})
                assert named, f"{method} {path} {status}"
                for ref in named.values():
                    value = _deref(document, ref)["value"]
                    assert str(value["status"]) == status, f"{method} {path} {status}"


def _error_classes() -> dict[str, int]:
    found: dict[str, int] = {}
    stack: list[type[AppError]] = [AppError]
    while stack:
        cls = stack.pop()
        if "code" in vars(cls):  # not an abstract base that inherits its code
            found[cls.code] = cls.status_code
        stack.extend(cls.__subclasses__())
    return found


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _example_body(document: dict[str, Any], schema_ref: str) -> dict[str, Any]:
    """The body Swagger UI prefills: each property's first example, else its default."""
    schema = _deref(document, {"$ref": schema_ref})
    body: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if "examples" in prop:
            body[name] = prop["examples"][0]
        elif "default" in prop:
            body[name] = prop["default"]
        else:
            assert name not in schema.get("required", []), f"{schema_ref}.{name} has no example"
    return body


# What the prefilled bodies get from a signed-in user with one account (the default: success).
EXPECTED_WITH_EXAMPLES = {
    # The example email may already be taken in this database (other tests, schemathesis).
    "POST /api/v1/auth/register": {201, 409},
    # The demo user exists only where `make run` seeded it.
    "POST /api/v1/auth/login": {200, 401},
    "POST /api/v1/auth/refresh": {401},
    # The example account ids belong to nobody until replaced by ids from GET /accounts.
    "POST /api/v1/payments": {404},
    "POST /api/v1/deposits": {404},
    # Signed here as the provider would (Swagger UI cannot sign); the deposit is nobody's.
    "POST /api/v1/webhooks/psp": {404},
    "POST /api/v1/admin/accounts/{account_id}/adjustments": {403},
    "PATCH /api/v1/admin/users/{user_id}": {403},
}


async def test_every_prefilled_request_body_is_accepted_as_valid_input(
    client: AsyncClient, app: FastAPI
) -> None:
    """Swagger UI's "Try it out" sends these: none may be a 422 as it stands."""
    document = (await client.get("/openapi.json")).json()
    user = await signed_in_user(client)
    account = await open_account(client, user)
    secret = app.state.webhook_verifier.secret
    tried = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if not content:
                continue
            media_type, media = next(iter(content.items()))
            body = _example_body(document, media["schema"]["$ref"])
            url = path.replace("{account_id}", account["id"]).replace("{user_id}", user.id)
            headers = idempotency_headers(user)
            if "password" in path and method == "post":  # the example's current password
                continue  # is the demo user's: checked below with that password.
            if path.endswith("/webhooks/psp"):
                raw = json.dumps(body).encode()
                headers = {"Content-Type": media_type, "PSP-Signature": sign(secret, raw)}
                response = await client.request(method, url, content=raw, headers=headers)
            elif media_type == "application/json":
                response = await client.request(method, url, json=body, headers=headers)
            else:
                response = await client.request(method, url, data=body, headers=headers)
            tried += 1
            assert response.status_code not in (400, 422), f"{method} {path}: {response.text}"
            # Beyond valid: each is answered as a first-time user would expect.
            expected = EXPECTED_WITH_EXAMPLES.get(f"{method.upper()} {path}", {200, 201, 204})
            assert response.status_code in expected, f"{method} {path}: {response.text}"
    assert tried >= 8


async def test_the_password_change_example_is_a_valid_change(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    body = _example_body(document, "#/components/schemas/PasswordChange")
    user = await signed_in_user(client, password=body["current_password"])
    response = await client.post("/api/v1/users/me/password", json=body, headers=user.headers)
    assert response.status_code == 204, response.text


async def test_token_endpoint_errors_carry_an_oauth2_error_description(client: AsyncClient) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", data={"username": f"{uuid.uuid4().hex}@example.com", "password": "x"}
    )
    assert wrong.status_code == 401
    body = wrong.json()
    assert body["error"] == "invalid_credentials"
    assert body["error_description"] == body["detail"]
    invalid = await client.post("/api/v1/auth/login", data={"username": "a"})
    assert invalid.status_code == 422
    assert invalid.json()["error_description"] == invalid.json()["detail"]
    # Elsewhere the shape stays as it was.
    other = await client.get("/api/v1/users/me")
    assert other.status_code == 401
    assert "error_description" not in other.json()
