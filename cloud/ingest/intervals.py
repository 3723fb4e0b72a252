"""A school's 15-minute energies, kept up to date as counter readings arrive in any order.

An interval's energy from one counter is the growth of the counter, interpolated linearly between
readings, from the interval's start to its end, with every corrected step (a reset, rollover or jump, see
`cloud.ingest.counters`) counted as the energy counted for it instead of as measured. Summed over the
devices of each kind: PV from the inverters' ``energy_wh``, import and export from the grid meters'.

Two implementations of the same rules:

* `interval_rows` computes every interval from all readings at once (the reference, and what the tests
  compare against);
* `update_intervals` changes only what new readings change, reading only the readings next to each new
  one and next to each interval boundary it affects. Since the counter is linear between readings,

  .. math:: E_k = c(b_{k+1}) - c(b_k) + \\sum_j a_j \\frac{|[s_j, e_j] \\cap [b_k, b_{k+1}]|}{e_j - s_j}

  with :math:`c` the raw counter interpolated at the boundaries and :math:`a_j` the adjustment (energy
  counted minus the raw step) of each corrected step :math:`[s_j, e_j]`, kept in ``counter_corrections``.
  Its cost per new reading does not grow with the number of readings in an interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from cloud.ingest.bulk import Bracket, Bulk
from cloud.ingest.checks import Limits, SchoolInfo
from cloud.ingest.counters import CORRECTION_KINDS, QUARTER_HOUR_MS, classify_steps, interval_energies
from common.wire import COUNTERS, DeviceKind

# Which interval column each kind's counter adds to.
INTERVAL_COLUMNS: dict[tuple[DeviceKind, str], str] = {
    (DeviceKind.PV_INVERTER, "energy_wh"): "pv_wh",
    (DeviceKind.GRID_METER, "import_wh"): "import_wh",
    (DeviceKind.GRID_METER, "export_wh"): "export_wh",
}
ENERGY_COLUMNS = ("pv_wh", "import_wh", "export_wh")
# Stored energies are rounded to µWh, so that recomputing an interval from other readings around its
# boundaries (equal in exact arithmetic) does not count as a change for a few ulp.
ENERGY_DECIMALS = 6
Q = QUARTER_HOUR_MS


class Series(NamedTuple):
    """One counter of one device."""

    device_id: str
    kind: str
    quantity: str


@dataclass
class SeriesReadings:
    ts_ms: list[int] = field(default_factory=list)
    value_wh: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Correction:
    """A corrected step of a counter: it ends at the reading of ``ts_ms`` (see `cloud.ingest.counters`)."""

    series: Series
    ts_ms: int
    correction: str
    previous_ts_ms: int
    previous_wh: float
    value_wh: float
    counted_wh: float


IntervalRow = dict[str, float | int | bool]


def series_max_power_w(series: Series, school: SchoolInfo, limits: Limits) -> float:
    """The most the series' device can deliver [W], which bounds how fast its counter may grow."""
    return limits.max_power_w(series.kind, school.pv_kwp)


def interval_rows(
    readings: Mapping[Series, SeriesReadings],
    window_start_ms: int,
    window_end_ms: int,
    max_power_w: Mapping[Series, float] | None = None,
) -> tuple[list[IntervalRow], list[Correction]]:
    """The intervals starting in ``[window_start_ms, window_end_ms)`` that some series has data for, and the
    corrections found; computed from all of each series' readings at once.

    Each series' energies come from `cloud.ingest.counters.interval_energies` with its device's maximum
    power (``max_power_w``; none given: no jumps or rollovers); an interval is complete when every series
    given is complete over it and PV, import and export each have at least one series.
    """
    corrections: list[Correction] = []
    starts_ms = np.arange(window_start_ms, window_end_ms, Q, dtype=np.int64)
    sums_wh = {name: np.zeros(starts_ms.size) for name in ENERGY_COLUMNS}
    covered = np.zeros(starts_ms.size, dtype=bool)
    complete = np.ones(starts_ms.size, dtype=bool)
    columns_seen: set[str] = set()
    for series, data in sorted(readings.items()):
        column = INTERVAL_COLUMNS.get((DeviceKind(series.kind), series.quantity))
        if column is None or not data.ts_ms:
            continue
        columns_seen.add(column)
        energies = interval_energies(data.ts_ms, data.value_wh, max_power_w=(max_power_w or {}).get(series))
        found = energies.corrections
        corrections.extend(
            Correction(
                series, ts_ms, CORRECTION_KINDS[kind], previous_ts_ms, previous_wh, value_wh, counted_wh
            )
            for ts_ms, kind, previous_ts_ms, previous_wh, value_wh, counted_wh in zip(
                found.ts_ms.tolist(),
                found.kind.tolist(),
                found.previous_ts_ms.tolist(),
                found.previous_wh.tolist(),
                found.value_wh.tolist(),
                found.counted_wh.tolist(),
                strict=True,
            )
        )
        series_complete = np.zeros(starts_ms.size, dtype=bool)
        inside = (energies.start_ms >= window_start_ms) & (energies.start_ms < window_end_ms)
        index = (energies.start_ms[inside] - window_start_ms) // Q
        sums_wh[column][index] += energies.energy_wh[inside]
        covered[index] = True
        series_complete[index] = energies.complete[inside]
        complete &= series_complete
    complete &= columns_seen.issuperset(ENERGY_COLUMNS)
    rows: list[IntervalRow] = []
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
    return rows, corrections


# The incremental update


@dataclass(frozen=True, slots=True)
class NewReading:
    """A counter reading just stored."""

    school_id: str
    series: Series
    ts_ms: int
    value_wh: float


@dataclass
class IntervalUpdate:
    """What `update_intervals` changed: intervals written (new or with other values) and corrections found
    that were not known before, each with its school."""

    intervals: list[tuple[str, IntervalRow]] = field(default_factory=list)
    corrections: list[tuple[str, Correction]] = field(default_factory=list)


def update_intervals(
    bulk: Bulk,
    new: Sequence[NewReading],
    schools: Mapping[str, SchoolInfo],
    limits: Limits,
    updated_ms: int,
) -> IntervalUpdate:
    """Bring the corrections and intervals of the schools of ``new`` (readings already inserted) up to date.

    The steps that end at a new reading or at the reading after one are classified again; the intervals
    from the one holding the reading before each new reading to the one holding the reading after it are
    recomputed for every counter of the school, and those whose values change are written.
    """
    update = IntervalUpdate()
    if not new:
        return update
    spans, open_ends, gaps = _update_corrections(bulk, new, schools, limits, updated_ms, update)
    windows = _windows(_without_open_quarters(bulk, spans, open_ends))
    series_of = _series_of_schools(windows.keys(), spans, schools)
    brackets: dict[tuple[str, Series, int], Bracket] = {}
    unknown: list[tuple[str, Series, int]] = []
    for school_id, ranges in windows.items():
        for series in series_of[school_id]:
            known = gaps.get((school_id, series), ())
            for start_ms, end_ms in ranges:
                for boundary_ms in range(start_ms, end_ms + 1, Q):
                    bracket = _bracket_from(known, boundary_ms)
                    if bracket is None:
                        unknown.append((school_id, series, boundary_ms))
                    else:
                        brackets[(school_id, series, boundary_ms)] = bracket
    found = bulk.brackets(
        [(school_id, series.device_id, series.quantity, b) for school_id, series, b in unknown], strict=False
    )
    brackets.update(zip(unknown, found, strict=True))
    window_rows = [(school_id, lo, hi) for school_id, ranges in windows.items() for lo, hi in ranges]
    adjustments: dict[tuple[str, str, str], list[tuple[int, int, float]]] = defaultdict(list)
    for school_id, device_id, quantity, start_ms, end_ms, adjustment_wh in bulk.corrections_within(
        window_rows
    ):
        adjustments[(school_id, device_id, quantity)].append(
            (int(start_ms), int(end_ms), float(adjustment_wh))
        )
    stored = {
        (school_id, int(start_ms)): (float(pv), float(imp), float(exp), float(cons), bool(complete))
        for school_id, start_ms, pv, imp, exp, cons, complete in bulk.intervals_within(window_rows)
    }
    changed: list[tuple[str, IntervalRow]] = []
    for school_id, ranges in windows.items():
        for start_ms, end_ms in ranges:
            for row in _window_rows(school_id, series_of[school_id], start_ms, end_ms, brackets, adjustments):
                values = (
                    row["pv_wh"],
                    row["import_wh"],
                    row["export_wh"],
                    row["consumption_wh"],
                    row["complete"],
                )
                if stored.get((school_id, int(row["start_ms"]))) != values:
                    changed.append((school_id, row))
    bulk.upsert_intervals(
        [
            (
                school_id,
                row["start_ms"],
                row["pv_wh"],
                row["import_wh"],
                row["export_wh"],
                row["consumption_wh"],
                row["complete"],
                updated_ms,
            )
            for school_id, row in changed
        ]
    )
    update.intervals = changed
    return update


Span = tuple[int, int]


def _update_corrections(
    bulk: Bulk,
    new: Sequence[NewReading],
    schools: Mapping[str, SchoolInfo],
    limits: Limits,
    detected_ms: int,
    update: IntervalUpdate,
) -> tuple[dict[tuple[str, Series], Span], set[tuple[str, Series]], dict[tuple[str, Series], list[Bracket]]]:
    """Classify every step next to a new reading and store the corrections among them. Returns for each
    counter the span from the reading before its first new one to the reading after its last, the counters
    whose span ends at their newest reading, and the gaps between consecutive readings now known (as
    brackets: the reading before and after, None for none)."""
    neighbours = bulk.brackets(
        [(r.school_id, r.series.device_id, r.series.quantity, r.ts_ms) for r in new], strict=True
    )
    # Each step by the series and time of the reading that ends it: (start time, start value, end value).
    steps: dict[tuple[str, Series, int], tuple[int, float, float]] = {}
    spans: dict[tuple[str, Series], Span] = {}
    # The counters whose span ends at their newest reading.
    open_ends: set[tuple[str, Series]] = set()
    gaps: dict[tuple[str, Series], list[Bracket]] = defaultdict(list)
    # The steps ending at a reading after a new one: only those can have a stored correction (below).
    ending_after: set[tuple[str, Series, int]] = set()
    for reading, (before_ts, before_wh, after_ts, after_wh) in zip(new, neighbours, strict=True):
        key = (reading.school_id, reading.series)
        gaps[key].append((before_ts, before_wh, reading.ts_ms, reading.value_wh))
        gaps[key].append((reading.ts_ms, reading.value_wh, after_ts, after_wh))
        if before_ts is not None and before_wh is not None:
            steps[(*key, reading.ts_ms)] = (before_ts, before_wh, reading.value_wh)
        if after_ts is not None and after_wh is not None:
            steps[(*key, after_ts)] = (reading.ts_ms, reading.value_wh, after_wh)
            ending_after.add((*key, after_ts))
        low = before_ts if before_ts is not None else reading.ts_ms
        high = after_ts if after_ts is not None else reading.ts_ms
        if key in spans:
            if high > spans[key][1]:
                open_ends.discard(key)
            low, high = min(low, spans[key][0]), max(high, spans[key][1])
        spans[key] = (low, high)
        if after_ts is None:
            open_ends.add(key)
    if not steps:
        return spans, open_ends, gaps
    keys = list(steps)
    starts_ms = np.array([steps[key][0] for key in keys], dtype=np.int64)
    ends_ms = np.array([key[2] for key in keys], dtype=np.int64)
    previous_wh = np.array([steps[key][1] for key in keys])
    value_wh = np.array([steps[key][2] for key in keys])
    max_power_w = np.array(
        [series_max_power_w(series, schools[school_id], limits) for school_id, series, _ in keys]
    )
    kinds, counted_wh = classify_steps(previous_wh, value_wh, ends_ms - starts_ms, max_power_w)
    # A step ending at a reading just inserted has no stored correction: a correction is stored under its
    # reading's time, and that reading was not there. (A pruned reading's correction stays, but its time is
    # older than any reading the ingest accepts: `Settings` holds the retention above that window.) Live
    # readings have no reading after them, so this asks nothing.
    if ending_after:
        ending_after -= {(r.school_id, r.series, r.ts_ms) for r in new}
    known = {
        (str(s), str(d), str(q), int(t)): str(correction)
        for s, d, q, t, correction, _counted in bulk.corrections_at(
            [
                (school_id, series.device_id, series.quantity, end_ms)
                for school_id, series, end_ms in sorted(ending_after)
            ]
        )
    }
    bulk.delete_corrections(list(known))
    rows = []
    for index in np.flatnonzero(kinds >= 0).tolist():
        school_id, series, end_ms = keys[index]
        correction = Correction(
            series,
            end_ms,
            CORRECTION_KINDS[int(kinds[index])],
            int(starts_ms[index]),
            float(previous_wh[index]),
            float(value_wh[index]),
            float(counted_wh[index]),
        )
        rows.append(
            (
                school_id,
                series.device_id,
                series.quantity,
                end_ms,
                series.kind,
                correction.correction,
                correction.previous_ts_ms,
                correction.previous_wh,
                correction.value_wh,
                correction.counted_wh,
                detected_ms,
            )
        )
        if known.get((school_id, series.device_id, series.quantity, end_ms)) != correction.correction:
            update.corrections.append((school_id, correction))
    bulk.insert_corrections(rows)
    return spans, open_ends, gaps


def _without_open_quarters(
    bulk: Bulk, spans: Mapping[tuple[str, Series], Span], open_ends: Collection[tuple[str, Series]]
) -> Mapping[tuple[str, Series], Span]:
    """The spans without the quarter a counter's newest reading lies in, when that quarter is still open.

    A quarter is settled once a counter with a reading before its end has one at or after it; the reading
    that does so spans the end, so its own window recomputes the quarter. Until then the quarter is open and
    is not stored: recomputing it at every live reading was a third of the store's time (docs/ingest.md).
    A stored row is kept up to date whatever made it (a late reading's window can store an open quarter), so
    a newest reading still recomputes its quarter when the quarter has a row.
    """
    open_quarters = {key: high // Q * Q for key in open_ends if (high := spans[key][1]) % Q}
    if not open_quarters:
        return spans
    stored = bulk.intervals_at(sorted({(key[0], start) for key, start in open_quarters.items()}))
    found = dict(spans)
    for key, start_ms in open_quarters.items():
        if (key[0], start_ms) not in stored:
            found[key] = (min(spans[key][0], start_ms), start_ms)
    return found


def _bracket_from(gaps: Sequence[Bracket], at_ms: int) -> Bracket | None:
    """The readings around ``at_ms`` (at it counting as both) if a known gap between consecutive readings
    holds it; None when the database must be asked."""
    for before_ts, before_wh, after_ts, after_wh in gaps:
        if before_ts == at_ms:
            return before_ts, before_wh, before_ts, before_wh
        if after_ts == at_ms:
            return after_ts, after_wh, after_ts, after_wh
        if (before_ts is None or before_ts < at_ms) and (after_ts is None or at_ms < after_ts):
            return before_ts, before_wh, after_ts, after_wh
    return None


def _windows(spans: Mapping[tuple[str, Series], Span]) -> dict[str, list[Span]]:
    """For each school, the intervals to recompute as ranges (first start, last end) of whole intervals."""
    found: dict[str, list[Span]] = defaultdict(list)
    for (school_id, _series), (low_ms, high_ms) in spans.items():
        first, end = low_ms // Q * Q, -(-high_ms // Q) * Q
        if first < end:
            found[school_id].append((first, end))
    windows: dict[str, list[Span]] = {}
    for school_id, pieces in found.items():
        # Overlapping or touching ranges become one.
        ranges: list[Span] = []
        for first, end in sorted(pieces):
            if ranges and first <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
            else:
                ranges.append((first, end))
        windows[school_id] = ranges
    return windows


def _series_of_schools(
    school_ids: Collection[str], spans: Mapping[tuple[str, Series], Span], schools: Mapping[str, SchoolInfo]
) -> dict[str, tuple[Series, ...]]:
    """Each school's counters, in order: those of its registered devices and those just written."""
    found = {school_id: _registered_series(schools[school_id]) for school_id in school_ids}
    for school_id, series in spans:
        known = found.get(school_id)
        if known is not None and series not in known:
            found[school_id] = tuple(sorted((*known, series)))
    return found


# Bounded, since a reloaded register brings new SchoolInfo objects (hashed by identity).
@lru_cache(maxsize=65_536)
def _registered_series(school: SchoolInfo) -> tuple[Series, ...]:
    """The counters of a school's registered devices, in order."""
    return tuple(
        sorted(
            Series(device_id, kind, quantity)
            for device_id, kind in school.devices.items()
            for quantity in COUNTERS[DeviceKind(kind)]
        )
    )


def _window_rows(
    school_id: str,
    series_list: Sequence[Series],
    start_ms: int,
    end_ms: int,
    brackets: Mapping[tuple[str, Series, int], Bracket],
    adjustments: Mapping[tuple[str, str, str], list[tuple[int, int, float]]],
) -> list[IntervalRow]:
    """The school's intervals of ``[start_ms, end_ms)`` that some counter covers (as `interval_rows`)."""
    count = (end_ms - start_ms) // Q
    sums_wh = {name: [0.0] * count for name in ENERGY_COLUMNS}
    covered = [False] * count
    complete = [True] * count
    columns_seen: set[str] = set()
    for series in series_list:
        column = INTERVAL_COLUMNS.get((DeviceKind(series.kind), series.quantity))
        if column is None:
            continue
        at = [brackets[(school_id, series, b)] for b in range(start_ms, end_ms + 1, Q)]
        if all(before_ts is None and after_ts is None for before_ts, _, after_ts, _ in at):
            continue
        columns_seen.add(column)
        values_wh = [_interpolate(start_ms + k * Q, bracket) for k, bracket in enumerate(at)]
        steps = sorted(adjustments.get((school_id, series.device_id, series.quantity), ()))
        for k in range(count):
            low_ms, high_ms = start_ms + k * Q, start_ms + (k + 1) * Q
            before_low, _, after_low, _ = at[k]
            before_high, _, after_high, _ = at[k + 1]
            # A reading after the start (one inside, or one beyond the end) and one before the end.
            later = (before_high is not None and before_high > low_ms) or after_high is not None
            earlier = (after_low is not None and after_low < high_ms) or before_low is not None
            if not (later and earlier):
                complete[k] = False
                continue
            covered[k] = True
            energy_wh = values_wh[k + 1] - values_wh[k]
            for step_start, step_end, adjustment_wh in steps:
                overlap_ms = min(step_end, high_ms) - max(step_start, low_ms)
                if overlap_ms > 0:
                    energy_wh += adjustment_wh * overlap_ms / (step_end - step_start)
            sums_wh[column][k] += max(energy_wh, 0.0)
            if before_low is None or after_high is None:
                complete[k] = False
    rows: list[IntervalRow] = []
    all_columns = columns_seen.issuperset(ENERGY_COLUMNS)
    for k in range(count):
        if not covered[k]:
            continue
        pv_wh, import_wh, export_wh = (round(sums_wh[name][k], ENERGY_DECIMALS) for name in ENERGY_COLUMNS)
        rows.append(
            {
                "start_ms": start_ms + k * Q,
                "pv_wh": pv_wh,
                "import_wh": import_wh,
                "export_wh": export_wh,
                "consumption_wh": round(pv_wh + import_wh - export_wh, ENERGY_DECIMALS),
                "complete": complete[k] and all_columns,
            }
        )
    return rows


def _interpolate(at_ms: int, bracket: Bracket) -> float:
    """The raw counter at ``at_ms`` from the readings around it, held flat beyond the first and last."""
    before_ts, before_wh, after_ts, after_wh = bracket
    if before_ts is None or before_wh is None:
        if after_wh is None:
            raise ValueError("a counter without readings has no value")
        return after_wh
    if after_ts is None or after_wh is None or before_ts == at_ms:
        return before_wh
    # As numpy.interp computes it.
    return (after_wh - before_wh) / (after_ts - before_ts) * (at_ms - before_ts) + before_wh
