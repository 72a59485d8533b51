"""The README's Swagger UI walk-through, done by a real browser against a real server.

Headless Chromium (Debian's package, driven by Playwright; never `playwright install`) opens the
docs with every request to anything but the app aborted, signs in through Authorize as the seeded
demo user, finds the demo account's id with `GET /accounts`, opens a second account from the
prefilled body, pays into it, pays again with the same key and sees the replay, reads both
balances, then tops up three times through the worker (succeeded, declined, pending until the
README's signed webhook command). A failure leaves a screenshot and the page's HTML in
`test-artifacts/browser/`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from tests.e2e.conftest import ROOT, Server, free_port, start_server

# Debian's package by default (`make test` installs it); CI elsewhere may name another build.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-2026"
# As the machine's own probe starts it: without the background-networking flags Chromium keeps
# calling Google's hosts, which this test would (rightly) count as leaving the app.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def demo_server(migrated_database: str) -> Iterator[Server]:
    """What `make run` runs, on the test database: it migrates, seeds and serves."""
    port = free_port()
    server = start_server([sys.executable, "-m", "app.cli", "run"], port, env={"PORT": str(port)})
    yield server
    server.stop()


class Docs:
    """Swagger UI as a person uses it: expand an operation, edit, Execute, read the answer."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def operation(self, tag: str, operation_id: str) -> Locator:
        block = self.page.locator(f"#operations-{tag}-{operation_id}")
        if not block.locator(".opblock-body").count():
            block.locator(".opblock-summary").click()
        return block

    def execute(
        self,
        block: Locator,
        *,
        body: dict[str, Any] | None = None,
        path: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        """Fill what is given, press Execute; the status, JSON body and headers shown."""
        for name, value in (path or {}).items():
            block.locator(f'tr[data-param-name="{name}"] input').fill(value)
        if body is not None:
            block.locator("textarea.body-param__text").fill(json.dumps(body))
        answer = block.locator(".live-responses-table tr.response")
        shown_headers = answer.locator(".response-col_description pre.microlight").nth(1)
        # A second Execute replaces the answer: its request id (a header) tells them apart.
        before = shown_headers.inner_text() if answer.count() else None
        block.get_by_role("button", name="Execute").click()
        deadline = time.monotonic() + 15
        while answer.count() == 0 or shown_headers.inner_text() == before:
            assert time.monotonic() < deadline, "no new answer within 15 s"
            self.page.wait_for_timeout(50)
        status = int(answer.locator(".response-col_status").inner_text().strip())
        text = answer.locator(".response-col_description pre.microlight").first.inner_text()
        headers = shown_headers.inner_text()
        return status, json.loads(text), headers.lower()


def test_the_readme_walk_through_in_a_real_browser(
    demo_server: Server, request: pytest.FixtureRequest
) -> None:
    assert CHROMIUM.exists(), "make test installs Debian's chromium; run it through make"
    base = demo_server.base_url
    outside: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1600})

        def only_the_app(route: Any) -> None:
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_app)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        try:
            _walk_through(page, base)
            # Sign-in survives a reload outside production (persistAuthorization).
            page.reload()
            status, _, _ = Docs(page).execute(Docs(page).operation("users", "read_current_user"))
            assert status == 200
            _read_redoc(page, base, problems)
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"\W+", "_", request.node.name)
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(page.content(), encoding="utf-8")
            raise
        finally:
            browser.close()
    assert outside == [], f"the docs tried to leave the app: {outside}"
    assert problems == [], problems


# ReDoc's sidebar credits Redocly with a logo from its CDN: the docs CSP refuses it, so it is
# never requested (the route above would see it). The one console error we expect.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _read_redoc(page: Page, base: str, problems: list[str]) -> None:
    before = len(problems)
    page.goto(f"{base}/redoc#tag/payments/operation/create_payment")
    page.get_by_text("Request samples").first.wait_for()
    sample = page.locator("[data-section-id='tag/payments/operation/create_payment']")
    assert '"amount": 1250' in sample.inner_text()
    refused = problems[before:]
    assert all(REDOCLY_LOGO in problem for problem in refused), refused
    del problems[before:]


def _walk_through(page: Page, base: str) -> None:
    # 1. The address uvicorn prints leads to the docs.
    page.goto(f"{base}/")
    assert page.url == f"{base}/docs"
    docs = Docs(page)
    page.locator("#operations-accounts-list_accounts").wait_for()

    # 2. Authorize as the demo user: email and password, nothing else to fill in.
    page.get_by_role("button", name="Authorize").first.click()
    page.fill("#oauth_username", DEMO_EMAIL)
    page.fill("#oauth_password", DEMO_PASSWORD)
    for hidden in ("#client_id_password", "#client_secret_password", "#password_type"):
        assert not page.locator(hidden).is_visible(), hidden
    assert not page.get_by_text("Scopes are used").is_visible()
    page.get_by_role("button", name="Apply given OAuth2 credentials").click()
    page.get_by_role("button", name="Remove authorization").wait_for()
    assert not page.get_by_text("Client credentials location").is_visible()
    page.locator(".auth-container").get_by_role("button", name="Close").click()

    # 3. The demo account's id comes from GET /accounts.
    status, listed, _ = docs.execute(docs.operation("accounts", "list_accounts"))
    assert status == 200
    demo = next(item for item in listed["items"] if item["currency"] == "EUR")
    assert demo["balance"] == 100_000  # 1,000.00 EUR in minor units

    # 4. Open a second account with the prefilled body, as it stands.
    status, savings, _ = docs.execute(docs.operation("accounts", "open_account"))
    assert status == 201, savings
    assert savings["currency"] == "EUR"
    assert savings["balance"] == 0

    # 5. Pay 12.50 into it; the Idempotency-Key field is prefilled with a fresh UUID.
    pay = docs.operation("payments", "create_payment")
    key = pay.locator('tr[data-param-name="Idempotency-Key"] input').input_value()
    assert re.fullmatch(r"[0-9a-f-]{36}", key), key
    body = {
        "source_account_id": demo["id"],
        "destination_account_id": savings["id"],
        "amount": 1250,
        "currency": "EUR",
        "description": "Lunch on Friday",
    }
    status, first, headers = docs.execute(pay, body=body)
    assert status == 201, first
    assert "idempotent-replayed" not in headers

    # 6. The same request again: replayed, nothing paid twice.
    status, second, headers = docs.execute(pay, body=body)
    assert status == 201, second
    assert second == first
    assert "idempotent-replayed: true" in headers

    # 7. The balances moved once.
    read = docs.operation("accounts", "read_account")
    status, source, _ = docs.execute(read, path={"account_id": demo["id"]})
    assert (status, source["balance"]) == (200, 100_000 - 1250)
    status, destination, _ = docs.execute(read, path={"account_id": savings["id"]})
    assert (status, destination["balance"]) == (200, 1250)

    # 8. Top-ups through the demo's fake card provider and the worker `make run` started: one
    #    that succeeds, one declined (..13), one pending (..77) until a signed webhook says so.
    deposit = docs.operation("deposits", "create_deposit")
    made = {}
    for amount in (5000, 1013, 2577):
        deposit.locator('tr[data-param-name="Idempotency-Key"] input').fill(str(uuid.uuid4()))
        status, created, _ = docs.execute(
            deposit, body={"account_id": savings["id"], "amount": amount, "currency": "EUR"}
        )
        assert (status, created["status"]) == (202, "pending"), created
        made[amount] = created["id"]
    assert _settled(docs, made[5000])["status"] == "succeeded"
    declined = _settled(docs, made[1013])
    assert (declined["status"], declined["failure_code"]) == ("failed", "card_declined")
    time.sleep(1)  # the worker has charged ..77 by now, and the provider said "pending"
    assert _settled(docs, made[2577], within=0)["status"] == "pending"
    url = f"{base}/api/v1/webhooks/psp"
    webhook = subprocess.run(  # noqa: S603 - the README's one-line command
        [sys.executable, "-m", "app.cli", "webhook", "charge.succeeded", made[2577], "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert webhook.returncode == 0, webhook.stdout + webhook.stderr
    assert _settled(docs, made[2577])["status"] == "succeeded"
    # A worker's commit reaches the cached balance through NOTIFY: within the re-drive bound.
    deadline = time.monotonic() + 10
    while (balance := docs.execute(read, path={"account_id": savings["id"]})[1]["balance"]) != (
        1250 + 5000 + 2577
    ):
        assert time.monotonic() < deadline, balance
        page.wait_for_timeout(250)


def _settled(docs: Docs, deposit_id: str, *, within: float = 20) -> dict[str, Any]:
    """GET /deposits/{id} until it is no longer pending, or `within` seconds have passed."""
    block = docs.operation("deposits", "read_deposit")
    deadline = time.monotonic() + within
    while True:
        status, body, _ = docs.execute(block, path={"deposit_id": deposit_id})
        assert status == 200, body
        if body["status"] != "pending" or time.monotonic() >= deadline:
            return dict(body)
        docs.page.wait_for_timeout(250)
