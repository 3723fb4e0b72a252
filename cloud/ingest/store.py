"""Storing what arrives on the broker: each message checked against the wire contract, then everything of one
batch of messages written in one transaction (samples, counter readings, intervals, links, dead letters).

Nothing here acknowledges anything: the worker acknowledges a message only after `TelemetryStore.store`
has returned, that is after the transaction holding it has been committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Table, insert, select, text

from cloud.db.models import (
    DEAD_LETTER_PAYLOAD_BYTES,
    DEAD_LETTER_REASON_CHARS,
    CounterReading,
    DeadLetter,
    Link,
    School,
)
from cloud.db.models import Sample as SampleRow
from cloud.db.upserts import insert_ignoring_conflicts, upsert
from cloud.ingest.intervals import Series, recompute_intervals
from common.clock import Clock
from common.config import describe_validation_error
from common.wire import (
    COUNTERS,
    Channel,
    Sample,
    Status,
    TelemetryBatch,
    WireError,
    decode_batch,
    decode_status,
    parse_topic,
)

logger = logging.getLogger(__name__)

MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_PAST_MS = 400 * 24 * 3600 * 1000

_SAMPLES: Table = SampleRow.__table__  # type: ignore[assignment]
_READINGS: Table = CounterReading.__table__  # type: ignore[assignment]
_LINKS: Table = Link.__table__  # type: ignore[assignment]
_DEAD_LETTERS: Table = DeadLetter.__table__  # type: ignore[assignment]
_SCHOOLS: Table = School.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Message:
    """One MQTT message as received: its topic, its payload and when it arrived by the clock."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass
class StoreReport:
    """What one call of `TelemetryStore.store` did."""

    messages: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    statuses: int = 0
    intervals: int = 0

    def add(self, other: StoreReport) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Refusal:
    """A message, or one sample of it, that breaks the contract or cannot be accepted."""

    topic: str
    reason: str
    payload: bytes
    received_ms: int


@dataclass
class _Triage:
    """A batch of messages sorted into what to store and what to refuse."""

    batches: list[tuple[TelemetryBatch, int]] = field(default_factory=list)
    statuses: list[tuple[Status, int]] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # One line per refused message: (topic, what was refused and why).
    log_lines: list[tuple[str, str]] = field(default_factory=list)


def known_school_ids(engine: Engine) -> set[str]:
    """The ids of the registered schools."""
    with engine.connect() as connection:
        return set(connection.execute(select(_SCHOOLS.c.id)).scalars())


class TelemetryStore:
    """Writes batches of broker messages into the store; each call is one transaction."""

    def __init__(self, engine: Engine, clock: Clock, school_ids: Collection[str]) -> None:
        self._engine = engine
        self._clock = clock
        self._school_ids = frozenset(school_ids)

    def store(self, messages: Sequence[Message]) -> StoreReport:
        """Check and store ``messages`` in one transaction; database errors propagate and nothing is kept."""
        triage = _Triage()
        now_ms = self._clock.now_ms()
        for message in messages:
            _triage_message(message, self._school_ids, now_ms, triage)
        report = StoreReport(messages=len(messages), dead_letters=len(triage.refusals))
        with self._engine.begin() as connection:
            _insert_dead_letters(connection, triage.refusals)
            _store_samples(connection, triage.batches, now_ms, report)
            for status, received_ms in triage.statuses:
                _store_status(connection, status, received_ms, now_ms)
            report.statuses = len(triage.statuses)
        for topic, what in triage.log_lines:
            logger.warning("refused on %r: %s", topic, what)
        return report

    def store_refusal(self, message: Message, reason: str) -> None:
        """Dead-letter a whole message for a reason found outside the contract (one that cannot be stored)."""
        with self._engine.begin() as connection:
            _insert_dead_letters(
                connection, [Refusal(message.topic, reason, message.payload, message.received_ms)]
            )
        logger.warning("refused on %r: %s", message.topic, reason)


def _triage_message(message: Message, school_ids: Collection[str], now_ms: int, triage: _Triage) -> None:
    def refuse(reason: str) -> None:
        triage.refusals.append(Refusal(message.topic, reason, message.payload, message.received_ms))
        triage.log_lines.append((message.topic, reason))

    try:
        school_id, channel = parse_topic(message.topic)
    except WireError as error:
        refuse(str(error))
        return
    if school_id not in school_ids:
        refuse(f"unknown school {school_id!r}")
        return
    if channel is Channel.STATUS:
        try:
            status = decode_status(message.payload)
        except WireError as error:
            refuse(f"status: {error}")
            return
        if status.school != school_id:
            refuse(f"payload school {status.school!r} does not match the topic's {school_id!r}")
            return
        triage.statuses.append((status, message.received_ms))
    elif channel is Channel.TELEMETRY:
        _triage_telemetry(message, school_id, now_ms, triage, refuse)
    else:
        refuse(f"channel {channel.value!r} is not ingested")


def _triage_telemetry(
    message: Message, school_id: str, now_ms: int, triage: _Triage, refuse: Callable[[str], None]
) -> None:
    bad_samples: list[tuple[str, bytes]] = []
    try:
        batch = decode_batch(message.payload)
    except WireError as error:
        salvaged = _salvage(message.payload)
        if salvaged is None:
            refuse(f"telemetry: {error}")
            return
        batch, bad_samples = salvaged
    if batch.school != school_id:
        refuse(f"payload school {batch.school!r} does not match the topic's {school_id!r}")
        return
    good: list[Sample] = []
    for sample in batch.samples:
        reason = _time_problem(sample.ts_ms, now_ms)
        if reason is None:
            good.append(sample)
        else:
            bad_samples.append((f"sample seq {sample.seq}: {reason}", sample.model_dump_json().encode()))
    for reason, payload in bad_samples:
        triage.refusals.append(Refusal(message.topic, reason, payload, message.received_ms))
    if bad_samples:
        total = len(good) + len(bad_samples)
        triage.log_lines.append(
            (message.topic, f"{len(bad_samples)} of {total} samples, the first because {bad_samples[0][0]}")
        )
    if good:
        triage.batches.append((batch.model_copy(update={"samples": good}), message.received_ms))


def _time_problem(ts_ms: int, now_ms: int) -> str | None:
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return f"ts_ms {ts_ms} is more than 1 day ahead of the clock ({now_ms})"
    if ts_ms < now_ms - MAX_PAST_MS:
        return f"ts_ms {ts_ms} is more than 400 days behind the clock ({now_ms})"
    return None


def _salvage(payload: bytes) -> tuple[TelemetryBatch, list[tuple[str, bytes]]] | None:
    """The batch without its malformed samples, and why each was refused; None if the fault is elsewhere."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        return None
    good: list[Sample] = []
    bad: list[tuple[str, bytes]] = []
    for index, item in enumerate(data["samples"]):
        try:
            good.append(Sample.model_validate(item))
        except ValidationError as error:
            where = f"samples.{index}"
            bad.append((f"{where}: {describe_validation_error(error)}", json.dumps(item).encode()))
    if not good or not bad:
        return None
    try:
        return TelemetryBatch.model_validate({**data, "samples": good}), bad
    except ValidationError:
        return None


def _insert_dead_letters(connection: Connection, refusals: Sequence[Refusal]) -> None:
    if not refusals:
        return
    connection.execute(
        insert(_DEAD_LETTERS),
        [
            {
                "received_ms": refusal.received_ms,
                "topic": refusal.topic[:512],
                "reason": refusal.reason[:DEAD_LETTER_REASON_CHARS],
                "payload": refusal.payload[:DEAD_LETTER_PAYLOAD_BYTES],
                "payload_bytes": len(refusal.payload),
            }
            for refusal in refusals
        ],
    )


def _finite_values(values: dict[str, float | None]) -> dict[str, float | None]:
    # NaN and infinity mean "could not be read" (JSON, and PostgreSQL, cannot hold them).
    return {name: value if value is None or math.isfinite(value) else None for name, value in values.items()}


@dataclass(frozen=True)
class _Accepted:
    """A sample to store, with what its batch says about it."""

    school_id: str
    stream: str
    backfill: bool
    received_ms: int
    sample: Sample

    def row(self) -> dict[str, object]:
        sample = self.sample
        return {
            "school_id": self.school_id,
            "stream": self.stream,
            "seq": sample.seq,
            "device_id": sample.device,
            "kind": sample.kind.value,
            "ts_ms": sample.ts_ms,
            "backfill": self.backfill,
            "received_ms": self.received_ms,
            "values": _finite_values(sample.values),
        }


def _store_samples(
    connection: Connection, batches: Sequence[tuple[TelemetryBatch, int]], now_ms: int, report: StoreReport
) -> None:
    """Insert the samples not stored yet, their counter readings, and recompute the intervals they touch."""
    accepted: dict[tuple[str, str, int], _Accepted] = {}
    offered = 0
    for batch, received_ms in batches:
        offered += len(batch.samples)
        for sample in batch.samples:
            key = (batch.school, batch.stream, sample.seq)
            accepted.setdefault(
                key, _Accepted(batch.school, batch.stream, batch.backfill, received_ms, sample)
            )
    if not accepted:
        return
    dialect = connection.dialect.name
    _lock_schools(connection, {key[0] for key in accepted})
    statement = insert_ignoring_conflicts(_SAMPLES, dialect, ["school_id", "stream", "seq"]).returning(
        _SAMPLES.c.school_id, _SAMPLES.c.stream, _SAMPLES.c.seq
    )
    inserted = connection.execute(statement, [item.row() for item in accepted.values()])
    new = [accepted[(school_id, stream, int(seq))] for school_id, stream, seq in inserted]
    report.samples_stored = len(new)
    report.duplicates = offered - len(new)
    readings = [reading for item in new for reading in _counter_readings(item)]
    if not readings:
        return
    connection.execute(
        insert_ignoring_conflicts(_READINGS, dialect, ["school_id", "device_id", "quantity", "ts_ms"]),
        readings,
    )
    touched: dict[str, dict[Series, tuple[int, int]]] = {}
    for item in new:
        spans = touched.setdefault(item.school_id, {})
        ts_ms = item.sample.ts_ms
        for quantity in _counters_read(item.sample):
            series = Series(item.sample.device, item.sample.kind.value, quantity)
            first_ms, last_ms = spans.get(series, (ts_ms, ts_ms))
            spans[series] = (min(first_ms, ts_ms), max(last_ms, ts_ms))
    for school_id, spans in touched.items():
        report.intervals += recompute_intervals(connection, school_id, spans, now_ms)


def _lock_schools(connection: Connection, school_ids: Collection[str]) -> None:
    """Make concurrent transactions on a school's readings take turns (PostgreSQL; SQLite has one writer).

    Two ingest processes of a group may store consecutive messages of one school at once; each recomputes
    intervals from the readings it can see, so the second must wait until the first has committed. Locks are
    taken in one order, so two transactions never wait for each other.
    """
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(_lock_key(school_id) for school_id in school_ids):
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _lock_key(school_id: str) -> int:
    """A stable signed 64-bit number for a school's advisory lock."""
    digest = hashlib.blake2b(f"lokalnie-readings:{school_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _counters_read(sample: Sample) -> list[str]:
    """The sample's cumulative counters that hold a finite value."""
    return [
        quantity
        for quantity in COUNTERS[sample.kind]
        if (value := sample.values.get(quantity)) is not None and math.isfinite(value)
    ]


def _counter_readings(item: _Accepted) -> list[dict[str, object]]:
    sample = item.sample
    return [
        {
            "school_id": item.school_id,
            "device_id": sample.device,
            "quantity": quantity,
            "ts_ms": sample.ts_ms,
            "kind": sample.kind.value,
            "value_wh": sample.values[quantity],
        }
        for quantity in _counters_read(sample)
    ]


def _store_status(connection: Connection, status: Status, received_ms: int, now_ms: int) -> None:
    """Record a school's link state; a status older than the one stored changes nothing.

    The will message carries no time: the moment it arrived stands for it.
    """
    since_ms = status.since_ms if status.since_ms is not None else received_ms
    statement = upsert(
        _LINKS,
        connection.dialect.name,
        ["school_id"],
        ["state", "since_ms", "updated_ms"],
        where=lambda proposed: _LINKS.c.since_ms <= proposed.since_ms,
    )
    connection.execute(
        statement,
        {"school_id": status.school, "state": status.state.value, "since_ms": since_ms, "updated_ms": now_ms},
    )
