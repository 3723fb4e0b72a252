"""``GET /api/v1/schools/{school_id}/corrections``: the counter steps the interval energies did not take as
measured (resets, rollovers, jumps), newest first.

Not registered in `cloud.api.routes` by this module: see docs/ingest.md ("Wiring the routers").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import ClockDep, SessionDep
from cloud.api.security import Allow
from cloud.auth.roles import Role
from cloud.db.models import CounterCorrection, School
from common.clock import datetime_from_ms, ms_from_datetime

DEFAULT_SPAN = timedelta(days=90)
MAX_CORRECTIONS = 1000

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])


class CorrectionPublic(BaseModel):
    """A counter step from ``previous_time`` to ``time`` counted as ``counted_wh`` instead of as measured."""

    device_id: str
    kind: str = Field(description="The device's kind: pv_inverter or grid_meter.")
    quantity: str = Field(description="The counter: energy_wh, import_wh or export_wh.")
    correction: str = Field(
        description="reset (fell), rollover (wrapped at its limit) or jump (rose too fast)."
    )
    time: datetime
    previous_time: datetime
    previous_wh: float
    value_wh: float
    step_wh: float = Field(description="value_wh - previous_wh: the step as measured [Wh].")
    counted_wh: float = Field(description="The energy counted for the step [Wh].")
    detected: datetime


@router.get(
    "/{school_id}/corrections",
    dependencies=[Allow(Role.ENERGY_OFFICER, Role.SCHOOL_ADMIN, school="school_id")],
    responses={404: {"description": "No such school."}},
)
def list_corrections(
    school_id: str,
    session: SessionDep,
    clock: ClockDep,
    from_: Annotated[
        datetime | None, Query(alias="from", description="ISO 8601; 90 days before 'to' if omitted.")
    ] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601, exclusive; now if omitted.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CORRECTIONS)] = 100,
) -> list[CorrectionPublic]:
    """The school's counter corrections with a step ending in [from, to), newest first."""
    if session.get(School, school_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no school with id {school_id!r}")
    end_ms = ms_from_datetime(to) if to is not None else clock.now_ms() + 1
    start_ms = (
        ms_from_datetime(from_) if from_ is not None else end_ms - int(DEFAULT_SPAN.total_seconds() * 1000)
    )
    rows = session.scalars(
        select(CounterCorrection)
        .where(
            CounterCorrection.school_id == school_id,
            CounterCorrection.ts_ms >= start_ms,
            CounterCorrection.ts_ms < end_ms,
        )
        .order_by(CounterCorrection.ts_ms.desc(), CounterCorrection.device_id, CounterCorrection.quantity)
        .limit(limit)
    )
    return [
        CorrectionPublic(
            device_id=row.device_id,
            kind=row.kind,
            quantity=row.quantity,
            correction=row.correction,
            time=datetime_from_ms(row.ts_ms),
            previous_time=datetime_from_ms(row.previous_ts_ms),
            previous_wh=row.previous_wh,
            value_wh=row.value_wh,
            step_wh=row.value_wh - row.previous_wh,
            counted_wh=row.counted_wh,
            detected=datetime_from_ms(row.detected_ms),
        )
        for row in rows
    ]
