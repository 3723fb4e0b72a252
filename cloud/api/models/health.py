"""What the health check answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
