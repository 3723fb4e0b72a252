"""Spool again, from the relational store, the time-series points of a period: for a time-series database that
was lost or restored from an older backup, or added to a deployment that ran without one.

The relational store is the record: raw samples (for as long as they are kept, `cloud.ingest.retention`),
the 15-minute intervals and the counter corrections. The points made from them are the same lines the ingest
spools (`cloud.timeseries.lines`), so InfluxDB, which keys a point by measurement, tags and time, replaces a
point it already has with the same values: running this over a period already sent, or twice, doubles
nothing. The lines go through the outbox like the ingest's, so the senders write them as they write
everything, and an outage of the time-series database only delays them.

The period is taken an hour at a time, each hour in its own transaction (an interrupted run is run again), and
the outbox is let grow only so far: while more lines wait than ``max_waiting_lines``, the next hour waits for
the senders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from cloud.db.models import CounterCorrection, Interval, Sample
from cloud.timeseries import lines as tsl
from cloud.timeseries.outbox import DEFAULT_BATCH_LINES, depth, spool

HOUR_MS = 3_600_000
# About a minute of sending at InfluxDB's recommended 5,000 lines a request.
DEFAULT_MAX_WAITING_LINES = 200_000


@dataclass
class RespoolReport:
    """Points spooled, by measurement."""

    readings: int = 0
    intervals: int = 0
    corrections: int = 0

    @property
    def lines(self) -> int:
        return self.readings + self.intervals + self.corrections


def window_lines(
    connection: Connection, devices: Sequence[tuple[str, str]], start_ms: int, end_ms: int
) -> tuple[list[str], RespoolReport]:
    """The points of ``[start_ms, end_ms)`` of the schools' ``(school, device)`` pairs, and their count."""
    report = RespoolReport()
    found: list[str] = []
    for school_id, device_id in devices:
        samples = connection.execute(
            select(Sample.kind, Sample.ts_ms, Sample.values)
            .where(Sample.school_id == school_id, Sample.device_id == device_id)
            .where(Sample.ts_ms >= start_ms, Sample.ts_ms < end_ms)
            .order_by(Sample.ts_ms)
        )
        for kind, ts_ms, values in samples:
            line = tsl.reading_line(school_id, device_id, kind, ts_ms, values)
            if line is not None:
                found.append(line)
                report.readings += 1
    for school_id in sorted({school for school, _device in devices}):
        intervals = connection.execute(
            select(
                Interval.start_ms,
                Interval.pv_wh,
                Interval.import_wh,
                Interval.export_wh,
                Interval.consumption_wh,
                Interval.complete,
            )
            .where(Interval.school_id == school_id, Interval.complete)
            .where(Interval.start_ms >= start_ms, Interval.start_ms < end_ms)
            .order_by(Interval.start_ms)
        )
        for interval in intervals.mappings():
            found.append(tsl.interval_line(school_id, interval["start_ms"], dict(interval)))
            report.intervals += 1
        corrections = connection.execute(
            select(
                CounterCorrection.device_id,
                CounterCorrection.kind,
                CounterCorrection.quantity,
                CounterCorrection.correction,
                CounterCorrection.ts_ms,
                CounterCorrection.previous_wh,
                CounterCorrection.value_wh,
                CounterCorrection.counted_wh,
            )
            .where(CounterCorrection.school_id == school_id)
            .where(CounterCorrection.ts_ms >= start_ms, CounterCorrection.ts_ms < end_ms)
            .order_by(CounterCorrection.ts_ms)
        )
        for correction in corrections:
            found.append(tsl.correction_line(school_id, *correction))
            report.corrections += 1
    return found, report


def respool(
    engine: Engine,
    devices: Sequence[tuple[str, str]],
    since_ms: int,
    until_ms: int,
    now_ms: Callable[[], int],
    *,
    max_waiting_lines: int = DEFAULT_MAX_WAITING_LINES,
    wait: Callable[[], None] = lambda: time.sleep(1.0),
    batch_lines: int = DEFAULT_BATCH_LINES,
    hour_done: Callable[[int, RespoolReport], None] | None = None,
) -> RespoolReport:
    """Spool the points of ``[since_ms, until_ms)`` of the schools' ``(school, device)`` pairs again.

    Parameters
    ----------
    engine : Engine
        The relational store.
    devices : sequence of (str, str)
        The schools' devices, as the site files name them.
    since_ms, until_ms : int
        The period [ms since the epoch]; taken in whole hours from ``since_ms``.
    now_ms : callable
        The time the outbox rows are made at.
    max_waiting_lines : int
        Before each hour, wait (calling ``wait``) while the outbox holds more lines than this.
    hour_done : callable, optional
        Called after each hour is committed with the hour's start and the totals so far.

    Returns
    -------
    RespoolReport
        The points spooled.
    """
    total = RespoolReport()
    for start_ms in range(since_ms, until_ms, HOUR_MS):
        while _waiting_lines(engine) > max_waiting_lines:
            wait()
        with engine.begin() as connection:
            found, report = window_lines(connection, devices, start_ms, min(start_ms + HOUR_MS, until_ms))
            spool(connection, found, now_ms(), batch_lines)
        total.readings += report.readings
        total.intervals += report.intervals
        total.corrections += report.corrections
        if hour_done is not None:
            hour_done(start_ms, total)
    return total


def _waiting_lines(engine: Engine) -> int:
    with engine.connect() as connection:
        return depth(connection).lines
