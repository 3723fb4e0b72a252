"""A school's 15-minute intervals, recomputed from its counter readings around the readings just stored.

A new reading changes the interpolated counter between its neighbouring readings, so the intervals from
the one holding the previous reading to the one holding the next are recomputed, summing over the devices
of each kind: PV from the inverters' ``energy_wh``, import and export from the grid meters' counters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, Table, literal, select, union_all

from cloud.db.models import CounterReading, Device, Interval
from cloud.db.upserts import upsert
from cloud.ingest.counters import QUARTER_HOUR_MS, interval_energies
from common.clock import iso_from_ms
from common.wire import COUNTERS, DeviceKind

logger = logging.getLogger(__name__)

# Which interval column each kind's counter adds to.
INTERVAL_COLUMNS: dict[tuple[DeviceKind, str], str] = {
    (DeviceKind.PV_INVERTER, "energy_wh"): "pv_wh",
    (DeviceKind.GRID_METER, "import_wh"): "import_wh",
    (DeviceKind.GRID_METER, "export_wh"): "export_wh",
}
ENERGY_COLUMNS = ("pv_wh", "import_wh", "export_wh")

_READINGS: Table = CounterReading.__table__  # type: ignore[assignment]
_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_INTERVALS: Table = Interval.__table__  # type: ignore[assignment]


@dataclass(frozen=True, order=True)
class Series:
    """One counter of one device."""

    device_id: str
    kind: str
    quantity: str


@dataclass
class SeriesReadings:
    ts_ms: list[int] = field(default_factory=list)
    value_wh: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Reset:
    """A counter that fell: the first reading after the fall and by how much."""

    series: Series
    ts_ms: int
    drop_wh: float


def interval_rows(
    readings: Mapping[Series, SeriesReadings], window_start_ms: int, window_end_ms: int
) -> tuple[list[dict[str, float | int | bool]], list[Reset]]:
    """The intervals starting in ``[window_start_ms, window_end_ms)`` that some series has data for, and the
    counter resets found.

    Each series' energies come from `cloud.ingest.counters.interval_energies`; an interval is complete when
    every series given is complete over it and PV, import and export each have at least one series.
    """
    resets: list[Reset] = []
    starts_ms = np.arange(window_start_ms, window_end_ms, QUARTER_HOUR_MS, dtype=np.int64)
    sums_wh = {name: np.zeros(starts_ms.size) for name in ENERGY_COLUMNS}
    covered = np.zeros(starts_ms.size, dtype=bool)
    complete = np.ones(starts_ms.size, dtype=bool)
    columns_seen: set[str] = set()
    for series, data in readings.items():
        column = INTERVAL_COLUMNS.get((DeviceKind(series.kind), series.quantity))
        if column is None or not data.ts_ms:
            continue
        columns_seen.add(column)
        energies = interval_energies(data.ts_ms, data.value_wh)
        resets.extend(
            Reset(series, int(ts_ms), float(drop_wh))
            for ts_ms, drop_wh in zip(energies.reset_ts_ms, energies.reset_drop_wh, strict=True)
        )
        series_complete = np.zeros(starts_ms.size, dtype=bool)
        inside = (energies.start_ms >= window_start_ms) & (energies.start_ms < window_end_ms)
        index = (energies.start_ms[inside] - window_start_ms) // QUARTER_HOUR_MS
        sums_wh[column][index] += energies.energy_wh[inside]
        covered[index] = True
        series_complete[index] = energies.complete[inside]
        complete &= series_complete
    complete &= columns_seen.issuperset(ENERGY_COLUMNS)
    rows: list[dict[str, float | int | bool]] = []
    for i in np.flatnonzero(covered):
        pv_wh, import_wh, export_wh = (float(sums_wh[name][i]) for name in ENERGY_COLUMNS)
        rows.append(
            {
                "start_ms": int(starts_ms[i]),
                "pv_wh": pv_wh,
                "import_wh": import_wh,
                "export_wh": export_wh,
                "consumption_wh": pv_wh + import_wh - export_wh,
                "complete": bool(complete[i]),
            }
        )
    return rows, resets


def recompute_intervals(
    connection: Connection, school_id: str, touched: Mapping[Series, tuple[int, int]], updated_ms: int
) -> int:
    """Recompute and store the intervals that new readings (each series' first and last time) changed.

    Returns the number of intervals written.
    """
    if not touched:
        return 0
    probes = [
        probe
        for series, (first_ms, last_ms) in touched.items()
        for probe in ((series, first_ms, True), (series, last_ms, False))
    ]
    reach_ms = [
        ts_ms if found is None else found[0]
        for (_, ts_ms, _), found in zip(probes, _neighbours(connection, school_id, probes), strict=True)
    ]
    low_ms, high_ms = min(reach_ms), max(reach_ms)
    window_start_ms = low_ms // QUARTER_HOUR_MS * QUARTER_HOUR_MS
    window_end_ms = -(-high_ms // QUARTER_HOUR_MS) * QUARTER_HOUR_MS
    readings = _readings_around(connection, school_id, window_start_ms, window_end_ms)
    rows, resets = interval_rows(readings, window_start_ms, window_end_ms)
    _log_new_resets(school_id, resets, touched)
    if rows:
        statement = upsert(
            _INTERVALS,
            connection.dialect.name,
            ["school_id", "start_ms"],
            [*ENERGY_COLUMNS, "consumption_wh", "complete", "updated_ms"],
        )
        connection.execute(
            statement, [{**row, "school_id": school_id, "updated_ms": updated_ms} for row in rows]
        )
    return len(rows)


Probe = tuple[Series, int, bool]


def _neighbours(
    connection: Connection, school_id: str, probes: Sequence[Probe]
) -> list[tuple[int, float] | None]:
    """For each probe (series, time, before), the series' reading (time, value) just before (or after) that
    time, if there is one; one query for all of them, each part an index lookup."""
    column = _READINGS.c.ts_ms
    parts = [
        select(
            select(literal(index).label("probe"), column, _READINGS.c.value_wh)
            .where(
                _READINGS.c.school_id == school_id,
                _READINGS.c.device_id == series.device_id,
                _READINGS.c.quantity == series.quantity,
                column < ts_ms if before else column > ts_ms,
            )
            .order_by(column.desc() if before else column.asc())
            .limit(1)
            .subquery()
        )
        for index, (series, ts_ms, before) in enumerate(probes)
    ]
    found: list[tuple[int, float] | None] = [None] * len(probes)
    if parts:
        for index, ts_ms, value_wh in connection.execute(union_all(*parts)):
            found[index] = (int(ts_ms), float(value_wh))
    return found


def _readings_around(
    connection: Connection, school_id: str, window_start_ms: int, window_end_ms: int
) -> dict[Series, SeriesReadings]:
    """Every counter reading of the school in the window, and for each counter of the school (those read in
    the window and those its devices should have) the nearest reading on either side of the window."""
    readings: dict[Series, SeriesReadings] = {}
    window = connection.execute(
        select(
            _READINGS.c.device_id,
            _READINGS.c.kind,
            _READINGS.c.quantity,
            _READINGS.c.ts_ms,
            _READINGS.c.value_wh,
        )
        .where(
            _READINGS.c.school_id == school_id,
            _READINGS.c.ts_ms >= window_start_ms,
            _READINGS.c.ts_ms <= window_end_ms,
        )
        .order_by(_READINGS.c.ts_ms)
    )
    for device_id, kind, quantity, ts_ms, value_wh in window:
        data = readings.setdefault(Series(device_id, kind, quantity), SeriesReadings())
        data.ts_ms.append(int(ts_ms))
        data.value_wh.append(float(value_wh))
    devices = connection.execute(
        select(_DEVICES.c.device_id, _DEVICES.c.kind).where(_DEVICES.c.school_id == school_id)
    )
    expected = {
        Series(device_id, kind, quantity)
        for device_id, kind in devices
        for quantity in COUNTERS[DeviceKind(kind)]
    }
    probes = [
        probe
        for series in sorted(expected | readings.keys())
        for probe in ((series, window_start_ms, True), (series, window_end_ms, False))
    ]
    for (series, _, _), found in zip(probes, _neighbours(connection, school_id, probes), strict=True):
        if found is not None:
            data = readings.setdefault(series, SeriesReadings())
            data.ts_ms.append(found[0])
            data.value_wh.append(found[1])
    return readings


def _log_new_resets(school_id: str, resets: list[Reset], touched: Mapping[Series, tuple[int, int]]) -> None:
    """One warning per counter reset among the new readings: the energy of that step is counted as zero."""
    for reset in resets:
        span = touched.get(reset.series)
        if span is not None and span[0] <= reset.ts_ms <= span[1]:
            logger.warning(
                "school %s device %s: counter %s fell by %.1f Wh at %s; counted as a reset",
                school_id,
                reset.series.device_id,
                reset.series.quantity,
                reset.drop_wh,
                iso_from_ms(reset.ts_ms),
            )
