"""``GET /api/v1/schools/{school_id}/events``: a school's health conditions raised now, and its recent health
events (from the edge agent's events topic), newest first.

Not registered in `cloud.api.routes` by this module: see docs/ingest.md ("Wiring the routers").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import SessionDep
from cloud.api.security import Allow
from cloud.auth.roles import Role
from cloud.db.models import SCHOOL_LEVEL_DEVICE, Event, EventState, School
from common.clock import datetime_from_ms

MAX_EVENTS = 500

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])


class ConditionPublic(BaseModel):
    """A condition raised now: the newest event about it raised it."""

    device_id: str | None = Field(description="None for a condition of the edge agent itself.")
    code: str
    severity: str
    since: datetime = Field(description="When it was raised.")
    updated: datetime = Field(description="The newest event about it.")
    message_pl: str


class EventPublic(BaseModel):
    """One health event as the edge agent sent it."""

    device_id: str | None
    code: str
    severity: str
    active: bool = Field(description="True: the condition was raised; False: cleared.")
    time: datetime
    message_pl: str
    details: dict[str, Any]


class EventsPublic(BaseModel):
    school_id: str
    active: list[ConditionPublic]
    recent: list[EventPublic]


@router.get(
    "/{school_id}/events",
    dependencies=[Allow(Role.ENERGY_OFFICER, Role.SCHOOL_ADMIN, school="school_id")],
    responses={404: {"description": "No such school."}},
)
def list_events(
    school_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="How many recent events.")] = 50,
) -> EventsPublic:
    """The conditions raised now (most severe first) and the newest ``limit`` events."""
    if session.get(School, school_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no school with id {school_id!r}")
    severity_order = {"critical": 0, "warning": 1, "info": 2}
    states = session.scalars(
        select(EventState).where(EventState.school_id == school_id, EventState.active.is_(True))
    ).all()
    active = sorted(states, key=lambda state: (severity_order.get(state.severity, 3), -state.since_ms))
    recent = session.scalars(
        select(Event)
        .where(Event.school_id == school_id)
        .order_by(Event.ts_ms.desc(), Event.id.desc())
        .limit(limit)
    ).all()
    return EventsPublic(
        school_id=school_id,
        active=[
            ConditionPublic(
                device_id=state.device_id if state.device_id != SCHOOL_LEVEL_DEVICE else None,
                code=state.code,
                severity=state.severity,
                since=datetime_from_ms(state.since_ms),
                updated=datetime_from_ms(state.ts_ms),
                message_pl=state.message_pl,
            )
            for state in active
        ],
        recent=[
            EventPublic(
                device_id=event.device_id,
                code=event.code,
                severity=event.severity,
                active=event.active,
                time=datetime_from_ms(event.ts_ms),
                message_pl=event.message_pl,
                details=event.details,
            )
            for event in recent
        ],
    )
