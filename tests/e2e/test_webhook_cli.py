"""The demo's one-line webhook: `python -m app.cli webhook …` signs as the provider and posts.

Against a real API process: the signed event finishes a pending deposit, the same event id
again is a harmless duplicate, and an unknown deposit is a failure the command reports.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx

from tests.e2e.conftest import ROOT, Server, new_customer, request_deposit


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    url = f"{server.base_url}/api/v1/webhooks/psp"
    return subprocess.run(  # noqa: S603 - a fixed command
        [sys.executable, "-m", "app.cli", "webhook", *args, "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_webhook_command_finishes_a_pending_deposit_once(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        auth, account_id = new_customer(client)
        deposit = request_deposit(client, auth, account_id, 2577)  # ..77: pending at the provider

        event_id = f"evt_{uuid.uuid4().hex}"
        first = _cli(server, "charge.succeeded", deposit, "--event-id", event_id)
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stdout.startswith("200 "), first.stdout
        again = _cli(server, "charge.succeeded", deposit, "--event-id", event_id)
        assert again.returncode == 0, again.stdout + again.stderr

        finished = client.get(f"/api/v1/deposits/{deposit}", headers=auth).json()
        assert finished["status"] == "succeeded"
        balance = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()
        assert balance["balance"] == 2577  # once, though the event came twice

        unknown = _cli(
            server, "charge.failed", str(uuid.uuid4()), "--failure-code", "card_declined"
        )
        assert unknown.returncode == 1
        assert unknown.stdout.startswith("404 "), unknown.stdout
