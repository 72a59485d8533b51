"""The bare baseline of `make bench`: one FastAPI route, no middleware, served like app.server.

SPEC §4 divides the project's rates by this app's: what is left is the cost of the project's
middleware, authentication, rate limiting, caching and database work. It runs with the
uvicorn settings `app.server` uses (one process, uvloop when installed, httptools, no access
log, no proxy headers, no logging configuration) on `PORT` (default 8001):

    PORT=8001 .venv/bin/python bench/bare_app.py
"""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/ping")
async def ping() -> dict[str, str]:
    """The cheapest JSON answer FastAPI can give."""
    return {"status": "ok"}


def serve(asgi: FastAPI) -> int:
    """Serve `asgi` on 127.0.0.1:$PORT until SIGTERM, as `app.server` serves the project."""
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "8001")),
        access_log=False,
        log_config=None,
        proxy_headers=False,
        http="httptools",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(serve(app))
