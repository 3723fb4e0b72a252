"""What the API reads from the store: a school's devices and their latest samples, its link, its PV counters'
growth and its intervals. Plain functions of a session; the routes turn their results into responses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import CounterReading, Device, Interval, Sample
from cloud.ingest.counters import counter_growth_wh
from common.clock import datetime_from_ms, ms_from_datetime
from common.wire import COUNTERS, DeviceKind

LOCAL_ZONE = ZoneInfo("Europe/Warsaw")
_PV_COUNTER = COUNTERS[DeviceKind.PV_INVERTER][0]


def local_day_ms(now_ms: int) -> tuple[int, int]:
    """The local (Europe/Warsaw) day holding ``now_ms``: its midnight and the next, in epoch ms."""
    day = datetime_from_ms(now_ms).astimezone(LOCAL_ZONE).date()
    start = datetime.combine(day, time(), tzinfo=LOCAL_ZONE)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=LOCAL_ZONE)
    return ms_from_datetime(start), ms_from_datetime(end)


def devices_of(session: Session, school_id: str) -> Sequence[Device]:
    return session.scalars(
        select(Device).where(Device.school_id == school_id).order_by(Device.device_id)
    ).all()


def latest_sample(session: Session, school_id: str, device_id: str, until_ms: int) -> Sample | None:
    """The device's newest sample taken at or before ``until_ms``."""
    query = (
        select(Sample)
        .where(Sample.school_id == school_id, Sample.device_id == device_id, Sample.ts_ms <= until_ms)
        .order_by(Sample.ts_ms.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def pv_growth_wh(
    session: Session, school_id: str, device_ids: Sequence[str], start_ms: int, end_ms: int
) -> float:
    """How much the inverters' energy counters grew between two times (see `counter_growth_wh`)."""
    total_wh = 0.0
    for device_id in device_ids:
        series = (
            CounterReading.school_id == school_id,
            CounterReading.device_id == device_id,
            CounterReading.quantity == _PV_COUNTER,
        )
        before = session.execute(
            select(CounterReading.ts_ms, CounterReading.value_wh)
            .where(*series, CounterReading.ts_ms < start_ms)
            .order_by(CounterReading.ts_ms.desc())
            .limit(1)
        ).all()
        during = session.execute(
            select(CounterReading.ts_ms, CounterReading.value_wh).where(
                *series, CounterReading.ts_ms >= start_ms, CounterReading.ts_ms <= end_ms
            )
        ).all()
        readings = [*before, *during]
        total_wh += counter_growth_wh(
            [row.ts_ms for row in readings], [row.value_wh for row in readings], start_ms, end_ms
        )
    return total_wh


def intervals_between(session: Session, school_id: str, start_ms: int, end_ms: int) -> Sequence[Interval]:
    """The school's intervals starting in ``[start_ms, end_ms)``, in time order."""
    query = (
        select(Interval)
        .where(Interval.school_id == school_id, Interval.start_ms >= start_ms, Interval.start_ms < end_ms)
        .order_by(Interval.start_ms)
    )
    return session.scalars(query).all()
