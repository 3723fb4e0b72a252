"""Storing what arrives on the broker: a batch of messages checked (`cloud.ingest.triage`), then written in
one transaction: samples, counter readings, corrections and intervals, links, health events, dead letters, the
worker's counters and, when the time-series sink is on, the line protocol for it.

Nothing here acknowledges anything: the worker acknowledges a message only after `TelemetryStore.store`
has returned, that is after the transaction holding it has been committed. Storage is idempotent: a sample
is stored once per ``(school, stream, seq)``, a health event once per ``(school, stream, seq)``, a counter
reading once per ``(school, device, quantity, ts)``; what was stored before is counted as a duplicate and
makes nothing new, not even line protocol.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from operator import countOf

from pydantic_core import to_json
from sqlalchemy import Engine

from cloud.db.models import DEAD_LETTER_PAYLOAD_BYTES, DEAD_LETTER_REASON_CHARS, SCHOOL_LEVEL_DEVICE
from cloud.ingest import stats
from cloud.ingest.bulk import Bulk
from cloud.ingest.checks import Limits, SchoolInfo, load_register
from cloud.ingest.intervals import IntervalUpdate, NewReading, Series, update_intervals
from cloud.ingest.stats import StoreReport
from cloud.ingest.triage import Accepted, Message, Refusal, Triage, triage
from cloud.timeseries import lines as tsl
from cloud.timeseries.outbox import DEFAULT_BATCH_LINES, spool
from common.clock import Clock, iso_from_ms
from common.wire import COUNTERS, OUTBOX_CREATED

__all__ = ["Message", "StoreReport", "TelemetryStore", "known_school_ids", "load_register"]

logger = logging.getLogger(__name__)

_COUNTERS = {kind.value: names for kind, names in COUNTERS.items()}
# What a condition cleared by its school's new outbox says (what the caretaker and the city read).
CLEARED_BY_NEW_OUTBOX_PL = (
    "Zamknięte: agent szkoły zaczął pracę z nowym buforem odczytów i nie wie o wcześniejszych zgłoszeniach; "
    "jeśli problem trwa, zgłosi go ponownie."
)


def known_school_ids(engine: Engine) -> set[str]:
    """The ids of the registered schools."""
    with engine.connect() as connection:
        return set(load_register(connection))


@dataclass(frozen=True)
class StoreOptions:
    """How a store writes: its bounds, whose counters it adds to, and whether it spools line protocol."""

    limits: Limits = field(default_factory=Limits)
    # The worker's MQTT client id, whose row of ``ingest_workers`` each transaction adds to; None: none.
    worker_id: str | None = None
    timeseries: bool = False
    timeseries_batch_lines: int = DEFAULT_BATCH_LINES


class TelemetryStore:
    """Writes batches of broker messages into the store; each call is one transaction, and calls from several
    threads may run side by side (each on its own connection)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        schools: Mapping[str, SchoolInfo] | Collection[str] | None = None,
        options: StoreOptions | None = None,
    ) -> None:
        """``schools``: the register (`cloud.ingest.checks.load_register`), read from the database if None.
        A collection of ids is accepted for the ids only (no roof sizes: no power bounds) and is looked up
        in the database."""
        self._engine = engine
        self._clock = clock
        self._options = options or StoreOptions()
        if schools is None or not isinstance(schools, Mapping):
            with engine.connect() as connection:
                register = load_register(connection)
            wanted = set(schools) if schools is not None else set(register)
            schools = {school_id: info for school_id, info in register.items() if school_id in wanted}
        self._schools: Mapping[str, SchoolInfo] = schools

    @property
    def schools(self) -> Mapping[str, SchoolInfo]:
        return self._schools

    def store(self, messages: Sequence[Message]) -> StoreReport:
        """Check and store ``messages`` in one transaction; database errors propagate and nothing is kept."""
        now_ms = self._clock.now_ms()
        options = self._options
        sorted_out = triage(messages, self._schools, now_ms, options.limits)
        report = StoreReport(
            messages=len(messages),
            dead_letters=len(sorted_out.refusals),
            refused_readings=sorted_out.refused_readings,
            statuses=len(sorted_out.statuses),
            transactions=1,
        )
        with self._engine.begin() as connection:
            bulk = Bulk(connection)
            lines: list[str] = []
            new_samples: list[Accepted] = []
            update = self._store_samples(bulk, sorted_out.samples, now_ms, report, lines, new_samples)
            _store_events(bulk, sorted_out, report)
            bulk.insert_dead_letters(_dead_letter_rows(sorted_out.refusals))
            bulk.upsert_links(
                [
                    (
                        status.school,
                        status.state.value,
                        status.since_ms if status.since_ms is not None else received_ms,
                        now_ms,
                    )
                    for status, received_ms in sorted_out.statuses
                ]
            )
            if options.timeseries:
                lines.extend(_update_lines(update))
                report.timeseries_lines = spool(connection, lines, now_ms, options.timeseries_batch_lines)
            if options.worker_id is not None:
                commit_ms = self._clock.now_ms()
                live = [s for s in new_samples if not s.backfill]
                report.lags_ms = [commit_ms - s.ts_ms for s in live]
                lag_ms = commit_ms - max(s.ts_ms for s in live) if live else None
                stats.count(connection, options.worker_id, report, _real_ms(), lag_ms, report.lags_ms)
        sorted_out.log()
        _log_corrections(update)
        return report

    def store_refusal(self, message: Message, reason: str) -> StoreReport:
        """Dead-letter a whole message for a reason found outside the contract (one that cannot be stored)."""
        report = StoreReport(messages=1, dead_letters=1, transactions=1)
        with self._engine.begin() as connection:
            Bulk(connection).insert_dead_letters(
                _dead_letter_rows([Refusal(message.topic, reason, message.payload, message.received_ms)])
            )
            if self._options.worker_id is not None:
                stats.count(connection, self._options.worker_id, report, _real_ms(), None)
        logger.warning("refused on %r: %s", message.topic, reason)
        return report

    def _store_samples(
        self,
        bulk: Bulk,
        samples: Sequence[Accepted],
        now_ms: int,
        report: StoreReport,
        lines: list[str],
        new_samples: list[Accepted],
    ) -> IntervalUpdate:
        """Insert the samples not stored yet (added to ``new_samples``) and their counter readings, then bring
        the corrections and intervals they touch up to date."""
        unique: dict[tuple[str, str, int], Accepted] = {}
        for sample in samples:
            unique.setdefault(sample.key, sample)
        report.duplicates = len(samples) - len(unique)
        if not unique:
            return IntervalUpdate()
        # One order for every transaction, so that two of them inserting the same keys do not deadlock.
        ordered = [unique[key] for key in sorted(unique)]
        inserted = bulk.insert_samples(
            [
                (
                    s.school_id,
                    s.stream,
                    s.seq,
                    s.device_id,
                    s.kind,
                    s.ts_ms,
                    s.backfill,
                    s.received_ms,
                    to_json(s.values).decode(),
                )
                for s in ordered
            ]
        )
        new = [sample for sample in ordered if sample.key in inserted]
        new_samples.extend(new)
        report.samples_stored = len(new)
        report.duplicates += len(unique) - len(new)
        if not new:
            return IntervalUpdate()
        report.readings_stored = sum(len(s.values) - countOf(s.values.values(), None) for s in new)
        report.newest_ts_ms = max(s.ts_ms for s in new)
        if self._options.timeseries:
            for s in new:
                line = tsl.reading_line(s.school_id, s.device_id, s.kind, s.ts_ms, s.values)
                if line is not None:
                    lines.append(line)
        readings = {
            (s.school_id, s.device_id, quantity, s.ts_ms): (s.kind, value)
            for s in new
            for quantity in _COUNTERS.get(s.kind, ())
            if (value := s.values.get(quantity)) is not None
        }
        if not readings:
            return IntervalUpdate()
        stored = bulk.insert_readings(
            [
                (school, device, quantity, ts, kind, value)
                for (school, device, quantity, ts), (kind, value) in sorted(readings.items())
            ]
        )
        fresh = []
        for key in sorted(stored):
            school, device, quantity, ts = key
            kind, value = readings[key]
            fresh.append(NewReading(school, Series(device, kind, quantity), ts, value))
        # Transactions touching the same school's readings take turns from here on (PostgreSQL).
        bulk.lock_schools(sorted({reading.school_id for reading in fresh}))
        update = update_intervals(bulk, fresh, self._schools, self._options.limits, now_ms)
        report.intervals = len(update.intervals)
        report.corrections = len(update.corrections)
        return update


def _real_ms() -> int:
    return time.time_ns() // 1_000_000


def _store_events(bulk: Bulk, sorted_out: Triage, report: StoreReport) -> None:
    """Insert the health events not stored yet and apply them, oldest first, to their conditions' states."""
    if not sorted_out.events:
        return
    unique = {(e.school, e.stream, e.seq): (e, received_ms) for e, received_ms in sorted_out.events}
    inserted = bulk.insert_events(
        [
            (
                e.school,
                e.stream,
                e.seq,
                e.device,
                e.code,
                e.severity.value,
                e.active,
                e.ts_ms,
                e.message_pl,
                json.dumps(e.details, separators=(",", ":")),
                received_ms,
            )
            for e, received_ms in (unique[key] for key in sorted(unique))
        ]
    )
    report.events_stored = len(inserted)
    report.event_duplicates = len(sorted_out.events) - len(inserted)
    new = sorted((unique[key][0] for key in inserted), key=lambda e: (e.ts_ms, e.stream, e.seq))
    bulk.upsert_event_states(
        [
            (
                e.school,
                e.device if e.device is not None else SCHOOL_LEVEL_DEVICE,
                e.code,
                e.active,
                e.severity.value,
                e.ts_ms,
                e.message_pl,
            )
            for e in new
        ]
    )
    for created in (e for e in new if e.code == OUTBOX_CREATED):
        bulk.clear_conditions_before(created.school, created.ts_ms, CLEARED_BY_NEW_OUTBOX_PL)


def _dead_letter_rows(refusals: Sequence[Refusal]) -> list[tuple[object, ...]]:
    return [
        (
            refusal.received_ms,
            refusal.topic[:512],
            refusal.reason[:DEAD_LETTER_REASON_CHARS],
            refusal.payload[:DEAD_LETTER_PAYLOAD_BYTES],
            len(refusal.payload),
        )
        for refusal in refusals
    ]


def _update_lines(update: IntervalUpdate) -> list[str]:
    """Line protocol for the intervals that became complete or changed while complete, and new corrections."""
    found = [
        tsl.interval_line(school_id, int(row["start_ms"]), row)
        for school_id, row in update.intervals
        if row["complete"]
    ]
    found.extend(
        tsl.correction_line(
            school_id,
            c.series.device_id,
            c.series.kind,
            c.series.quantity,
            c.correction,
            c.ts_ms,
            c.previous_wh,
            c.value_wh,
            c.counted_wh,
        )
        for school_id, c in update.corrections
    )
    return found


def _log_corrections(update: IntervalUpdate) -> None:
    """One warning per counter step newly found to need a correction."""
    for school_id, c in update.corrections:
        logger.warning(
            "school %s device %s: counter %s went from %.1f Wh to %.1f Wh at %s; counted as a %s (%.1f Wh)",
            school_id,
            c.series.device_id,
            c.series.quantity,
            c.previous_wh,
            c.value_wh,
            iso_from_ms(c.ts_ms),
            c.correction,
            c.counted_wh,
        )
