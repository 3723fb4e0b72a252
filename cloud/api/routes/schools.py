"""``/api/v1/schools``: the register of schools, a school's live view and its 15-minute energies.

Public: they are the city's energy data, shown on kiosks and the city's pages, with no personal data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api import readings
from cloud.api.deps import ClockDep, SessionDep
from cloud.api.models.schools import (
    DeviceLivePublic,
    IntervalPublic,
    IntervalsPublic,
    LinkPublic,
    LivePublic,
    LocationPublic,
    SchoolPublic,
)
from cloud.api.security import Public
from cloud.db.models import Link, School
from cloud.ingest.counters import QUARTER_HOUR_MS
from common.clock import datetime_from_ms, ms_from_datetime
from common.wire import POWER_QUANTITY, SCHOOL_ID_PATTERN, DeviceKind

MAX_INTERVALS_SPAN = timedelta(days=31)
_SCHOOL_ID = re.compile(SCHOOL_ID_PATTERN)

router = APIRouter(prefix="/api/v1/schools", tags=["schools"], dependencies=[Public()])


def _school_or_404(session: Session, school_id: str) -> School:
    # An id no school can have is not looked up (it may hold bytes a database refuses).
    school = session.get(School, school_id) if _SCHOOL_ID.match(school_id) else None
    if school is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no school with id {school_id!r}")
    return school


@router.get("")
def list_schools(session: SessionDep) -> list[SchoolPublic]:
    """Every school of the programme, by id."""
    schools = session.scalars(select(School).order_by(School.id)).all()
    return [
        SchoolPublic(
            id=school.id,
            name=school.name,
            type=school.type,
            address=school.address,
            pv_kwp=school.pv_kwp,
            pupils=school.pupils,
            location=LocationPublic(lat=school.lat, lon=school.lon),
        )
        for school in schools
    ]


@router.get("/{school_id}/live", responses={404: {"description": "No such school."}})
def read_live(school_id: str, session: SessionDep, clock: ClockDep) -> LivePublic:
    """The school's link, each device's latest sample, power now and PV energy since local midnight."""
    _school_or_404(session, school_id)
    now_ms = clock.now_ms()
    devices: list[DeviceLivePublic] = []
    power_w: dict[str, float | None] = {DeviceKind.PV_INVERTER: None, DeviceKind.GRID_METER: None}
    for device in readings.devices_of(session, school_id):
        sample = readings.latest_sample(session, school_id, device.device_id, now_ms)
        if sample is None:
            devices.append(DeviceLivePublic(device_id=device.device_id, kind=device.kind))
            continue
        devices.append(
            DeviceLivePublic(
                device_id=device.device_id,
                kind=device.kind,
                values=sample.values,
                time=datetime_from_ms(sample.ts_ms),
                age_s=(now_ms - sample.ts_ms) / 1000,
            )
        )
        device_power_w = sample.values.get(POWER_QUANTITY)
        if device.kind in power_w and device_power_w is not None:
            power_w[device.kind] = (power_w[device.kind] or 0.0) + device_power_w
    pv_w, grid_w = power_w[DeviceKind.PV_INVERTER], power_w[DeviceKind.GRID_METER]
    day_start_ms, _ = readings.local_day_ms(now_ms)
    inverters = [item.device_id for item in devices if item.kind == DeviceKind.PV_INVERTER]
    return LivePublic(
        school_id=school_id,
        now=datetime_from_ms(now_ms),
        link=_link(session.get(Link, school_id)),
        devices=devices,
        pv_power_w=pv_w,
        grid_power_w=grid_w,
        consumption_w=pv_w + grid_w if pv_w is not None and grid_w is not None else None,
        today_start=datetime_from_ms(day_start_ms),
        today_pv_wh=readings.pv_growth_wh(session, school_id, inverters, day_start_ms, now_ms),
    )


def _link(link: Link | None) -> LinkPublic:
    if link is None:
        return LinkPublic(state="unknown")
    state = "online" if link.state == "online" else "offline"
    return LinkPublic(state=state, since=datetime_from_ms(link.since_ms))


@router.get(
    "/{school_id}/intervals",
    responses={404: {"description": "No such school."}, 422: {"description": "A bad from or to."}},
)
def read_intervals(
    school_id: str,
    session: SessionDep,
    clock: ClockDep,
    from_: Annotated[
        datetime | None,
        Query(
            alias="from", description="ISO 8601 start (UTC if no offset); today's local midnight if omitted."
        ),
    ] = None,
    to: Annotated[
        datetime | None,
        Query(description="ISO 8601 end, exclusive (UTC if no offset); the next local midnight if omitted."),
    ] = None,
) -> IntervalsPublic:
    """The school's 15-minute intervals starting in [from, to), at most 31 days: every quarter that has
    ended (the one still open appears once a reading at or past its end arrives)."""
    _school_or_404(session, school_id)
    day_start_ms, day_end_ms = readings.local_day_ms(clock.now_ms())
    start_ms = ms_from_datetime(from_) if from_ is not None else day_start_ms
    end_ms = ms_from_datetime(to) if to is not None else day_end_ms
    _check_range(start_ms, end_ms, to is not None)
    rows = readings.intervals_between(session, school_id, start_ms, end_ms)
    return IntervalsPublic(
        school_id=school_id,
        from_=datetime_from_ms(start_ms),
        to=datetime_from_ms(end_ms),
        intervals=[
            IntervalPublic(
                start=datetime_from_ms(row.start_ms),
                end=datetime_from_ms(row.start_ms + QUARTER_HOUR_MS),
                pv_wh=row.pv_wh,
                import_wh=row.import_wh,
                export_wh=row.export_wh,
                consumption_wh=row.consumption_wh,
                complete=row.complete,
            )
            for row in rows
        ],
    )


def _check_range(start_ms: int, end_ms: int, to_given: bool) -> None:
    """422 naming the parameter at fault: ``to`` if it was given, else ``from``."""
    culprit = "to" if to_given else "from"
    if end_ms <= start_ms:
        _invalid(
            culprit, "must be after 'from'" if culprit == "to" else "must be before 'to'", start_ms, end_ms
        )
    if end_ms - start_ms > MAX_INTERVALS_SPAN / timedelta(milliseconds=1):
        _invalid(culprit, "'from' and 'to' must be at most 31 days apart", start_ms, end_ms)


def _invalid(parameter: str, message: str, start_ms: int, end_ms: int) -> None:
    value = datetime_from_ms(start_ms if parameter == "from" else end_ms).astimezone(UTC).isoformat()
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}]
    )
