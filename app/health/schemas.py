"""Response bodies of the health probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class LivenessRead(BaseModel):
    """The process is up and its event loop answers."""

    status: Literal["ok"] = "ok"


class ReadinessRead(BaseModel):
    """Every dependency answered; the process can take traffic."""

    status: Literal["ok"] = "ok"
    checks: dict[str, Literal["ok"]]
