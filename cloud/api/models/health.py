"""What the health check answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cloud.ingest.metrics import IngestHealth


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="``degraded`` when the database does not answer or the ingest is degraded."
    )
    database: Literal["ok", "unavailable"]
    ingest: IngestHealth | None = Field(
        default=None, description="The ingest's workers, totals, spool and lag; absent without a database."
    )
