"""The incremental interval update against the reference computation, on SQLite and PostgreSQL: readings
arriving in any order and in any grouping, with resets, rollovers and swaps among them, give the intervals
and corrections that all readings at once give — every quarter that has ended, and not necessarily the one
still open."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest.checks import Limits
from cloud.ingest.counters import QUARTER_HOUR_MS
from cloud.ingest.intervals import Series, SeriesReadings, interval_rows
from common.wire import DeviceKind, Sample
from tests.ingest.conftest import NOW_MS, IngestDb, telemetry
from tests.ingest.load import PV_KWP

Q = QUARTER_HOUR_MS
LIMITS = Limits()
PV = Series("inverter", DeviceKind.PV_INVERTER.value, "energy_wh")
IMPORT = Series("meter", DeviceKind.GRID_METER.value, "import_wh")
EXPORT = Series("meter", DeviceKind.GRID_METER.value, "export_wh")
MAX_POWER_W = {
    PV: LIMITS.max_power_w(PV.kind, PV_KWP),
    IMPORT: LIMITS.max_power_w(IMPORT.kind, PV_KWP),
    EXPORT: LIMITS.max_power_w(EXPORT.kind, PV_KWP),
}


@st.composite
def counter(draw: st.DrawFn, max_power_w: float, times: list[int]) -> list[float]:
    """A counter at the given times, growing at plausible power, with a reset, a rollover or a swap now
    and then."""
    value = draw(st.sampled_from([draw(st.floats(0, 1e7)), 2.0**32 - draw(st.floats(0, 5e4))]))
    values = [value]
    for before, after in itertools.pairwise(times):
        event = draw(st.sampled_from(["grow"] * 8 + ["reset", "swap"]))
        if event == "grow":
            value += draw(st.floats(0, 0.9)) * max_power_w * (after - before) / 3.6e6
            value = value - 2.0**32 if value >= 2.0**32 else value
        elif event == "reset":
            value = draw(st.floats(0, 100))
        else:
            value += 5e9
        values.append(value)
    return values


@st.composite
def school_day(draw: st.DrawFn) -> dict[Series, tuple[list[int], list[float]]]:
    """Readings of a school's three counters over two hours before NOW_MS."""
    readings = {}
    for series in (PV, IMPORT, EXPORT):
        offsets = draw(st.lists(st.integers(0, 8 * Q), min_size=1, max_size=25, unique=True))
        times = sorted(NOW_MS - 8 * Q + offset for offset in offsets)
        readings[series] = (times, draw(counter(MAX_POWER_W[series], times)))
    return readings


def samples_of(readings: dict[Series, tuple[list[int], list[float]]]) -> list[Sample]:
    """One sample per reading time of each device (the meter's two counters share their times here only if
    drawn so: each counter's readings become samples carrying that counter alone)."""
    samples = []
    seq = 0
    for series, (times, values) in readings.items():
        kind = DeviceKind(series.kind)
        for ts, value in zip(times, values, strict=True):
            seq += 1
            samples.append(
                Sample(seq=seq, device=series.device_id, kind=kind, ts_ms=ts, values={series.quantity: value})
            )
    return samples


def settled(readings: dict[Series, tuple[list[int], list[float]]], start_ms: int) -> bool:
    """Whether the quarter from ``start_ms`` has ended for the school: some counter has a reading before its
    end and one at or after it."""
    end_ms = start_ms + Q
    return any(times[0] < end_ms <= times[-1] for times, _values in readings.values())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(school_day(), st.randoms(use_true_random=False), st.integers(1, 12))
def test_readings_in_any_order_give_the_intervals_and_corrections_of_all_at_once(
    ingest_db: IngestDb,
    readings: dict[Series, tuple[list[int], list[float]]],
    shuffler: random.Random,
    chunk: int,
) -> None:
    school = ingest_db.add_school()
    samples = samples_of(readings)
    shuffler.shuffle(samples)
    store = ingest_db.store()
    for start in range(0, len(samples), chunk):
        store.store([telemetry(school, samples[start : start + chunk])])

    all_at_once = {
        series: SeriesReadings(list(times), list(values)) for series, (times, values) in readings.items()
    }
    expected, corrections = interval_rows(all_at_once, NOW_MS - 9 * Q, NOW_MS + Q, MAX_POWER_W)
    stored = ingest_db.rows(
        "SELECT start_ms, pv_wh, import_wh, export_wh, consumption_wh, complete FROM intervals "
        "WHERE school_id = :school ORDER BY start_ms",
        school=school,
    )
    # Every settled quarter is stored, and every stored one (some open one a late reading touched may be)
    # equals the reference.
    by_start = {row["start_ms"]: row for row in expected}
    assert {start for start in by_start if settled(readings, start)} <= {row[0] for row in stored}
    for row in stored:
        want = by_start[row[0]]
        for index, name in enumerate(("pv_wh", "import_wh", "export_wh", "consumption_wh"), start=1):
            assert row[index] == pytest.approx(want[name], rel=1e-9, abs=1e-5), name
        assert bool(row[5]) == want["complete"]
    stored_corrections = ingest_db.rows(
        "SELECT device_id, quantity, ts_ms, correction, previous_ts_ms, counted_wh FROM counter_corrections "
        "WHERE school_id = :school ORDER BY device_id, quantity, ts_ms",
        school=school,
    )
    wanted = sorted(
        (c.series.device_id, c.series.quantity, c.ts_ms, c.correction, c.previous_ts_ms, c.counted_wh)
        for c in corrections
    )
    assert [row[:5] for row in stored_corrections] == [row[:5] for row in wanted]
    assert [row[5] for row in stored_corrections] == pytest.approx([row[5] for row in wanted])


def test_the_open_quarter_is_stored_once_it_ends_and_any_row_of_it_kept_up_to_date(
    ingest_db: IngestDb,
) -> None:
    """Live readings do not store the quarter they lie in; a late reading may (its window reaches the newest
    reading), and from then on each newer reading keeps that row equal to the reference; the reading that
    ends the quarter stores it."""
    school = ingest_db.add_school()
    store = ingest_db.store()
    start_ms = NOW_MS - 4 * Q
    seconds = [200, 100, 300, 400, 15 * 60 + 10]
    sent: dict[Series, tuple[list[int], list[float]]] = {PV: ([], [])}

    def send(offset_s: int) -> list[tuple[object, ...]]:
        ts_ms, value_wh = start_ms + offset_s * 1000, 1000.0 + offset_s
        sent[PV][0].append(ts_ms)
        sent[PV][1].append(value_wh)
        sample = Sample(seq=len(sent[PV][0]), device="inverter", kind=DeviceKind.PV_INVERTER,
                        ts_ms=ts_ms, values={"energy_wh": value_wh})  # fmt: skip
        store.store([telemetry(school, [sample])])
        return ingest_db.rows("SELECT start_ms, pv_wh FROM intervals WHERE school_id = :s", s=school)

    def reference() -> list[tuple[object, ...]]:
        order = sorted(range(len(sent[PV][0])), key=sent[PV][0].__getitem__)
        readings = {PV: SeriesReadings([sent[PV][0][i] for i in order], [sent[PV][1][i] for i in order])}
        rows, _ = interval_rows(readings, start_ms - Q, NOW_MS + Q, MAX_POWER_W)
        return [(row["start_ms"], pytest.approx(row["pv_wh"])) for row in rows]

    assert send(seconds[0]) == []
    late = send(seconds[1])
    assert late in ([], reference())
    for offset_s in seconds[2:4]:
        assert send(offset_s) == (reference() if late else [])
    assert send(seconds[4]) == [reference()[0]]
