"""What the drills share (tools/alert_drill.py, tools/image_smoke.py): ports, polling, HTTP, SQL.

A drill is a script that runs real processes, makes something happen and checks that what must
follow does, within a deadline; a step that does not happen raises DrillError.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine


class DrillError(Exception):
    """A step of a drill did not happen as it must."""


def require(condition: object, message: str) -> None:
    """Raise DrillError with `message` unless `condition` holds."""
    if not condition:
        raise DrillError(message)


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    """Poll `condition` every half second; DrillError after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise DrillError(f"no {what} within {seconds:.0f} s")
        time.sleep(0.5)


def http_status(url: str) -> int | None:
    """The status `url` answers with, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URLs
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def call(
    base: str, method: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    """One JSON (or form, for a dict under `form`) request; the status and the JSON answer."""
    data = None
    if isinstance(body, dict) and "form" in body:
        data = urllib.parse.urlencode(body["form"]).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def admin_sql(url: str, statement: str) -> None:
    """Run one statement (CREATE / DROP DATABASE) on the server of `url`, outside a transaction."""
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()
