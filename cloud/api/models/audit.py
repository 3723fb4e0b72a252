"""What the audit log's route answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ActorPublic(BaseModel):
    kind: Literal["user", "api_key", "cli", "anonymous"]
    id: int | None = Field(default=None, description="The user's or the key's id.")
    name: str


class AuditEntryPublic(BaseModel):
    """One administrative action: who, what, on what, when and from where."""

    id: int
    at: datetime
    actor: ActorPublic
    area: str
    action: str
    target: str
    details: dict[str, Any]
    client_ip: str | None = None
