"""``/api/v1/ingest``: what the ingest refused (dead letters), for the energy officer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from cloud.api.deps import SessionDep
from cloud.api.models.ingest import DeadLetterPublic
from cloud.api.security import Allow
from cloud.auth.roles import Role
from cloud.db.models import DeadLetter
from common.clock import datetime_from_ms

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

MAX_LETTERS = 500
MAX_ID = 2**63 - 1


@router.get("/dead-letters", dependencies=[Allow(Role.ENERGY_OFFICER)])
def list_dead_letters(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LETTERS)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Letters older than this one.")
    ] = None,
) -> list[DeadLetterPublic]:
    """The newest dead letters, newest first."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(DeadLetter.id < before_id)
    return [
        DeadLetterPublic(
            id=letter.id,
            received=datetime_from_ms(letter.received_ms),
            topic=letter.topic,
            reason=letter.reason,
            payload_text=letter.payload.decode("utf-8", errors="replace"),
            payload_bytes=letter.payload_bytes,
            payload_truncated=len(letter.payload) < letter.payload_bytes,
        )
        for letter in session.scalars(query)
    ]
