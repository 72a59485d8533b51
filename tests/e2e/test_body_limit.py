"""A real server refuses a 51 MB body before reading it: memory stays flat, liveness stays fast."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from tests.e2e.conftest import Server

DECLARED = 51 * 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_request(server: Server, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request head and body chunks on a raw socket; return what the server answered."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: it did not wait for the rest
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer


def test_declared_and_streamed_oversized_bodies_cost_no_memory(server: Server) -> None:
    pid = server.process.pid
    before = rss_kib(pid)
    head = (
        "POST /api/v1/auth/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n"
    ).encode()
    answer = raw_request(server, head, [b'{"refresh_token":"x","z":{' + b" " * 65536])
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer[:200]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "payload_too_large"

    chunk = b" " * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(200))  # 13 MB
    head = (
        b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer = raw_request(
        server, head, [chunked[i : i + 262144] for i in range(0, len(chunked), 262144)]
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    live = httpx.get(f"{server.base_url}/health/live", timeout=2)
    assert live.status_code == 200
    # Before the limit the same requests took the process from ~112 MB to ~680 MB.
    assert rss_kib(pid) - before < 20 * 1024
