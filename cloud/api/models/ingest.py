"""What the ingest's administrative routes answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeadLetterPublic(BaseModel):
    """A message, or one sample of it, that the ingest refused, with the reason."""

    id: int
    received: datetime
    topic: str
    reason: str
    payload_text: str = Field(description="The stored start of the payload as UTF-8 (bad bytes replaced).")
    payload_bytes: int = Field(description="The whole payload's size [bytes].")
    payload_truncated: bool = Field(description="True if only the start of the payload was kept.")
