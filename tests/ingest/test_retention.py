"""Pruning the raw rows, on SQLite and PostgreSQL: what is older than the cutoff goes except each counter's
newest reading; intervals stay; and a reading arriving later gives the intervals that all readings ever
sent give, as if nothing had been pruned. The command refuses a retention the ingest could still reach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cloud.ingest.checks import DAY_MS, Limits
from cloud.ingest.counters import QUARTER_HOUR_MS
from cloud.ingest.intervals import Series, SeriesReadings, interval_rows
from cloud.ingest.retention import prune_raw_readings
from cloud.ingest.store import Message
from common.wire import Channel, DeviceKind, Sample, school_topic
from tests.ingest.conftest import NOW_MS, IngestDb, telemetry
from tests.ingest.load import PV_KWP

Q = QUARTER_HOUR_MS
# The store accepts two days back; the raw rows are kept three.
LIMITS = Limits(max_past_ms=2 * DAY_MS)
CUTOFF_MS = NOW_MS - 3 * DAY_MS
OLD_MS = NOW_MS - 4 * DAY_MS
# A reading three weeks before the others: the prune skips the days between without a transaction each.
EARLIEST_MS = OLD_MS - 20 * DAY_MS
PV = Series("inverter", DeviceKind.PV_INVERTER.value, "energy_wh")
IMPORT = Series("meter", DeviceKind.GRID_METER.value, "import_wh")
EXPORT = Series("meter", DeviceKind.GRID_METER.value, "export_wh")
MAX_POWER_W = {series: LIMITS.max_power_w(series.kind, PV_KWP) for series in (PV, IMPORT, EXPORT)}


class Fleet:
    """One school's readings as they are sent, kept for the reference computation."""

    def __init__(self, ingest_db: IngestDb) -> None:
        self.db = ingest_db
        self.school = ingest_db.school_ids[0]
        self.sent: dict[Series, SeriesReadings] = {s: SeriesReadings([], []) for s in (PV, IMPORT, EXPORT)}
        self.seq = 0

    def send(self, now_ms: int, times: list[int], pv: bool = True, meter: bool = True) -> None:
        """Samples at ``times`` with counters growing at 2 kW (PV) and 1 kW / 0.5 kW (import / export)."""
        self.db.clock.set(now_ms)
        samples = []
        for ts in times:
            hours = (ts - EARLIEST_MS) / 3.6e6
            if pv:
                samples.append(self._sample("inverter", DeviceKind.PV_INVERTER, ts, energy_wh=2000 * hours))
            if meter:
                values = {"import_wh": 1e6 + 1000 * hours, "export_wh": 5e5 + 500 * hours}
                samples.append(self._sample("meter", DeviceKind.GRID_METER, ts, **values))
        report = self.db.store(limits=LIMITS).store([telemetry(self.school, samples)])
        assert report.dead_letters == 0 and report.refused_readings == 0

    def _sample(self, device: str, kind: DeviceKind, ts: int, **values: float) -> Sample:
        self.seq += 1
        for quantity, value in values.items():
            readings = self.sent[Series(device, kind.value, quantity)]
            readings.ts_ms.append(ts)
            readings.value_wh.append(value)
        return Sample(seq=self.seq, device=device, kind=kind, ts_ms=ts, values=dict(values))

    def intervals(self) -> list[tuple[Any, ...]]:
        return self.db.rows(
            "SELECT start_ms, pv_wh, import_wh, export_wh, consumption_wh, complete FROM intervals "
            "WHERE school_id = :school ORDER BY start_ms",
            school=self.school,
        )


def count(ingest_db: IngestDb, table: str, column: str = "ts_ms", before_ms: int = CUTOFF_MS) -> object:
    return ingest_db.scalar(f"SELECT COUNT(*) FROM {table} WHERE {column} < :cutoff", cutoff=before_ms)


def test_old_raw_rows_go_and_later_readings_count_as_if_they_had_not(ingest_db: IngestDb) -> None:
    fleet = Fleet(ingest_db)
    fleet.send(EARLIEST_MS, [EARLIEST_MS])
    old_times = [OLD_MS + step * Q for step in range(9)]
    fleet.send(OLD_MS + 8 * Q, old_times)
    dead = Message(school_topic(fleet.school, Channel.TELEMETRY), b"not json", OLD_MS)
    fleet.db.clock.set(OLD_MS)
    assert ingest_db.store(limits=LIMITS).store([dead]).dead_letters == 1
    # Today: the meter has been reporting for two hours; the inverter has been silent since the old readings.
    fleet.send(NOW_MS, [NOW_MS - 8 * Q + step * Q for step in range(8)], pv=False)
    assert count(ingest_db, "samples") == 20 and count(ingest_db, "counter_readings") == 30
    intervals_before = fleet.intervals()

    transactions: list[object] = []
    count_transaction = transactions.append
    event.listen(ingest_db.engine, "begin", count_transaction)
    report = prune_raw_readings(ingest_db.engine, CUTOFF_MS)
    event.remove(ingest_db.engine, "begin", count_transaction)

    # A transaction per day of data, not per day of the calendar (the three weeks between cost none).
    assert len(transactions) < 30
    assert (report.samples, report.counter_readings, report.dead_letters) == (20, 27, 1)
    assert count(ingest_db, "samples") == 0
    assert count(ingest_db, "dead_letters", "received_ms") == 0
    kept = ingest_db.rows(
        "SELECT device_id, quantity, ts_ms FROM counter_readings WHERE ts_ms < :cutoff ORDER BY quantity",
        cutoff=CUTOFF_MS,
    )
    assert kept == [("inverter", "energy_wh", OLD_MS + 8 * Q), ("meter", "export_wh", OLD_MS + 8 * Q),
                    ("meter", "import_wh", OLD_MS + 8 * Q)]  # fmt: skip
    assert count(ingest_db, "samples", before_ms=NOW_MS + 1) == 8, "recent samples stay"
    assert fleet.intervals() == intervals_before
    assert prune_raw_readings(ingest_db.engine, CUTOFF_MS).samples == 0, "a second run finds nothing"

    # The inverter reports again: its four days of energy are spread from its newest old reading.
    fleet.send(NOW_MS, [NOW_MS - 2 * Q, NOW_MS - Q], meter=False)
    expected, _ = interval_rows(fleet.sent, EARLIEST_MS, NOW_MS + Q, MAX_POWER_W)
    stored = fleet.intervals()
    assert [row[0] for row in stored] == [row["start_ms"] for row in expected]
    for row, want in zip(stored, expected, strict=True):
        for index, name in enumerate(("pv_wh", "import_wh", "export_wh", "consumption_wh"), start=1):
            assert row[index] == pytest.approx(want[name], rel=1e-9, abs=1e-5), name
        assert bool(row[5]) == want["complete"]
    assert sum(float(row[1]) for row in stored) == pytest.approx(2000 * (NOW_MS - Q - EARLIEST_MS) / 3.6e6)


def prune_command(database: Path, retention_days: int) -> subprocess.CompletedProcess[str]:
    """``lokalnie prune`` as an operator runs it, on an SQLite file."""
    return subprocess.run(
        [sys.executable, "-m", "lokalnie", "prune", "--retention-days", str(retention_days)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"},
    )


def test_the_command_prunes_the_database_it_is_given(tmp_path: Path) -> None:
    result = prune_command(tmp_path / "lokalnie.db", 500)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Deleted 0 samples, 0 counter readings and 0 dead letters older than 500 days."
    )


def test_the_command_refuses_a_retention_the_ingest_still_reaches(tmp_path: Path) -> None:
    result = prune_command(tmp_path / "never.db", 300)
    assert result.returncode != 0
    assert "LOKALNIE_RAW_RETENTION_DAYS (300) must be longer than LOKALNIE_INGEST_MAX_PAST_DAYS (400)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
