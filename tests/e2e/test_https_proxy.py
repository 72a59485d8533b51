"""HTTPS at the proxy, proven without Docker: Debian's Caddy with the project's own Caddyfile.

A real API process behind a real Caddy (`tls internal`, its local CA in a folder of the test's
own): HTTPS verified against that CA, HTTP redirected, the security headers on and `Server`
gone, `/metrics` not served through the proxy, and the client address: the X-Forwarded-For
Caddy sets is believed (the API trusts the proxy's address), one a client sends is not, so each
real client has its own rate-limit budget and a forged header buys none.

Every client here is on loopback, so "real clients" are distinct loopback source addresses
(127.x.y.z), picked at random so that no earlier run's rate-limit counters apply.
"""

from __future__ import annotations

import os
import random
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Server, free_port, read_log_once_it_has, start_app_server

CADDY = shutil.which("caddy") or "/usr/bin/caddy"
CADDYFILE = ROOT / "docker" / "caddy" / "Caddyfile"
LIMIT = 5  # the default per-IP limit for this test: a budget small enough to spend


@dataclass
class Proxy:
    """Caddy in front of the API: its ports and the root certificate of its local CA."""

    http_port: int
    https_port: int
    root_certificate: Path
    api: Server

    def client(self, source: str, **kwargs: object) -> httpx.Client:
        """A client whose connections come from `source` and trust only Caddy's local CA."""
        context = ssl.create_default_context(cafile=str(self.root_certificate))
        transport = httpx.HTTPTransport(local_address=source, verify=context)
        return httpx.Client(transport=transport, timeout=10, **kwargs)  # type: ignore[arg-type]

    @property
    def https(self) -> str:
        return f"https://localhost:{self.https_port}"


@pytest.fixture
def proxy(migrated_database: str, tmp_path: Path) -> Iterator[Proxy]:
    assert Path(CADDY).exists(), "caddy is missing: make test installs it (Debian package)"
    api_port = free_port()
    # What the image runs (python -m app.server: uvicorn's own proxy-header handling off, the
    # app's from TRUSTED_PROXIES on), not plain uvicorn, which believes 127.0.0.1 by default.
    api = start_app_server(
        api_port, {"TRUSTED_PROXIES": "127.0.0.1", "RATE_LIMIT_DEFAULT": f"{LIMIT}/minute"}
    )
    http_port, https_port = free_port(), free_port()
    log = (tmp_path / "caddy.log").open("w")
    caddy = subprocess.Popen(  # noqa: S603 - a fixed command
        [CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={
            **os.environ,
            "XDG_DATA_HOME": str(tmp_path / "data"),  # its CA and certificates
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "HTTP_PORT": str(http_port),
            "HTTPS_PORT": str(https_port),
            "API_UPSTREAM": "127.0.0.1",
            "API_PORT": str(api_port),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    running = Proxy(http_port, https_port, root, api)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert caddy.poll() is None, (tmp_path / "caddy.log").read_text()
            try:
                if root.exists():
                    with running.client("127.0.0.1") as client:
                        client.get(f"{running.https}/health/live")
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()
            time.sleep(0.2)
        yield running
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
        log.close()
        api.stop()


def _loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def test_https_verified_against_the_local_ca_with_the_security_headers(proxy: Proxy) -> None:
    with proxy.client("127.0.0.1") as client:
        response = client.get(f"{proxy.https}/health/live")
        assert response.status_code == 200
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=31536000")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "server" not in headers
        # The request id survives the proxy: the logs of both sides can be joined.
        assert headers["x-request-id"]
    # Without Caddy's CA the same URL is refused: the certificate is not a public one.
    with httpx.Client(timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(f"{proxy.https}/health/live")


def test_plain_http_is_redirected_to_https(proxy: Proxy) -> None:
    response = httpx.get(f"http://localhost:{proxy.http_port}/docs", timeout=10)
    assert response.status_code == 308
    assert response.headers["location"].startswith("https://localhost")


def test_metrics_are_not_served_through_the_proxy(proxy: Proxy) -> None:
    with proxy.client("127.0.0.1") as client:
        assert client.get(f"{proxy.https}/metrics").status_code == 404
        assert client.get(f"{proxy.https}/metrics/anything").status_code == 404
    # The API itself serves them, for Prometheus on the internal network.
    assert httpx.get(f"{proxy.api.base_url}/metrics", timeout=10).status_code == 200


def test_the_rate_limit_sees_the_real_client_and_not_a_forged_header(proxy: Proxy) -> None:
    first, second = _loopback(), _loopback()
    with proxy.client(first) as client:
        statuses = [
            # A new forged address on every request: were it believed, no budget would run out.
            client.get(
                f"{proxy.https}/api/v1/accounts", headers={"X-Forwarded-For": _loopback()}
            ).status_code
            for _ in range(LIMIT + 1)
        ]
    assert statuses == [401] * LIMIT + [429], statuses
    # Another real client, through the same proxy, has its own budget: the proxy's
    # X-Forwarded-For is believed, or every client would be the proxy (127.0.0.1).
    with proxy.client(second) as client:
        assert client.get(f"{proxy.https}/api/v1/accounts").status_code == 401
    # And the API's log names the real clients, never the forged ones.
    logged = read_log_once_it_has(proxy.api.log, f'"client":"{second}"')
    assert f'"client":"{first}"' in logged
    assert f'"client":"{second}"' in logged


def test_a_forged_header_sent_straight_to_the_api_is_not_believed(proxy: Proxy) -> None:
    source = _loopback()
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        forged = {"X-Forwarded-For": "203.0.113.9"}
        assert (
            client.get(f"{proxy.api.base_url}/api/v1/accounts", headers=forged).status_code == 401
        )
    logged = read_log_once_it_has(proxy.api.log, f'"client":"{source}"')
    assert f'"client":"{source}"' in logged
    assert "203.0.113.9" not in logged
