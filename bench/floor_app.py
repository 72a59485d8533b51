"""The floor of `make bench`: the least a cached, authenticated read can cost on this stack.

One FastAPI route with one dependency that verifies a bearer JWT (HS256, PyJWT), one Redis
script call in the handler (redis-py's blocking pool, hiredis: an INCR and two GETs, as the
project's one round trip counts the rate limit and reads the principal and the account), and
a small pydantic answer. No middleware, no access log, no metrics, no database: nothing the SPEC
asks for beyond the read itself. The cached `GET /accounts/{id}` can only approach this row;
its ratio to bare is the ceiling of the project's, on this machine.

    PORT=8002 REDIS_URL=redis://127.0.0.1:6379/14 FLOOR_JWT_KEY=... .venv/bin/python \
        bench/floor_app.py

Served like the bare app (`bare_app.serve`).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import jwt
from bare_app import serve
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from redis.asyncio import BlockingConnectionPool, Redis

KEY = os.environ.get("FLOOR_JWT_KEY", "")
redis = Redis.from_pool(
    BlockingConnectionPool.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"), max_connections=50, timeout=0.5
    )
)
read = redis.register_script(
    "if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], 60) end "
    "return {redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}"
)
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class Account(BaseModel):
    """An answer of the read's size."""

    id: str
    name: str
    currency: str
    balance: int


async def caller(request: Request) -> str:
    """The subject of a valid bearer token; 401 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        claims = jwt.decode(token, KEY, algorithms=["HS256"]) if scheme == "Bearer" else {}
    except jwt.InvalidTokenError:
        claims = {}
    if "sub" not in claims:
        raise HTTPException(status_code=401)
    return str(claims["sub"])


@app.get("/ping")
async def ping() -> dict[str, str]:
    """Ready: the harness waits for a 200 here."""
    return {"status": "ok"}


@app.get("/floor/{account_id}")
async def floor(account_id: str, user: Annotated[str, Depends(caller)]) -> Account:
    """One Redis round trip, then the answer."""
    await read(keys=[f"floor:count:{user}", f"floor:user:{user}", f"floor:account:{account_id}"])
    return Account(id=account_id, name="Main", currency="EUR", balance=0)


if __name__ == "__main__":
    sys.exit(serve(app))
