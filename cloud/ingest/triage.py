"""Sorting what arrives on the broker into what to store and what to refuse, without touching the database.

Each message is checked against the wire contract (`common.wire`) and the ingest's own bounds
(`cloud.ingest.checks`). What breaks them becomes a `Refusal` with its reason, at the smallest scope that
holds the fault: a whole message (not JSON, wrong shape, a school that does not match its topic), one sample
(a malformed one, a time far from the clock) or one reading (NaN, infinite, beyond what the device can
show: stored as null, "could not be read"). Everything else of the same message is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from cloud.ingest.checks import Limits, SchoolInfo, time_problem, value_problem, value_ranges
from common.config import describe_validation_error
from common.wire import (
    MAX_PAYLOAD_BYTES,
    Channel,
    HealthEvent,
    Sample,
    Status,
    TelemetryBatch,
    WireError,
    decode_batch,
    decode_event,
    decode_status,
    parse_topic,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One MQTT message as received: its topic, its payload and when it arrived by the clock."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True)
class Refusal:
    """A message, one sample of it or some readings of a sample that break the contract or the bounds."""

    topic: str
    reason: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """A sample to store, with what its batch says about it; refused readings are None in ``values``."""

    school_id: str
    stream: str
    seq: int
    device_id: str
    kind: str
    ts_ms: int
    backfill: bool
    received_ms: int
    values: dict[str, float | None]

    @property
    def key(self) -> tuple[str, str, int]:
        return self.school_id, self.stream, self.seq


@dataclass
class Triage:
    """A batch of messages sorted into what to store and what to refuse."""

    samples: list[Accepted] = field(default_factory=list)
    statuses: list[tuple[Status, int]] = field(default_factory=list)
    events: list[tuple[HealthEvent, int]] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # Readings refused one by one (the rest of their sample is kept).
    refused_readings: int = 0
    # One line per message with something refused: (topic, what was refused and why).
    log_lines: list[tuple[str, str]] = field(default_factory=list)

    def log(self) -> None:
        """One warning per message with something refused: the topic and the reason, never the payload."""
        for topic, what in self.log_lines:
            logger.warning("refused on %r: %s", topic, what)


def triage(
    messages: Sequence[Message], schools: Mapping[str, SchoolInfo], now_ms: int, limits: Limits
) -> Triage:
    """Sort ``messages`` into samples, statuses and events to store, and refusals."""
    result = Triage()
    for message in messages:
        _triage_message(message, schools, now_ms, limits, result)
    return result


def _triage_message(
    message: Message, schools: Mapping[str, SchoolInfo], now_ms: int, limits: Limits, result: Triage
) -> None:
    def refuse(reason: str) -> None:
        result.refusals.append(Refusal(message.topic, reason, message.payload, message.received_ms))
        result.log_lines.append((message.topic, reason))

    try:
        school_id, channel = parse_topic(message.topic)
    except WireError as error:
        refuse(str(error))
        return
    school = schools.get(school_id)
    if school is None:
        refuse(f"unknown school {school_id!r}")
        return
    if channel is Channel.TELEMETRY:
        _triage_telemetry(message, school_id, school, now_ms, limits, result, refuse)
    elif channel is Channel.STATUS:
        try:
            status = decode_status(message.payload)
        except WireError as error:
            refuse(f"status: {error}")
            return
        if status.school != school_id:
            refuse(f"payload school {status.school!r} does not match the topic's {school_id!r}")
            return
        result.statuses.append((status, message.received_ms))
    elif channel is Channel.EVENTS:
        try:
            event = decode_event(message.payload)
        except WireError as error:
            refuse(f"event: {error}")
            return
        if event.school != school_id:
            refuse(f"payload school {event.school!r} does not match the topic's {school_id!r}")
            return
        problem = time_problem(event.ts_ms, now_ms, limits)
        if problem is not None:
            refuse(f"event: {problem}")
            return
        result.events.append((event, message.received_ms))
    else:
        refuse(f"channel {channel.value!r} is not ingested")


def _triage_telemetry(
    message: Message,
    school_id: str,
    school: SchoolInfo,
    now_ms: int,
    limits: Limits,
    result: Triage,
    refuse: Callable[[str], None],
) -> None:
    bad: list[tuple[str, bytes]] = []
    try:
        batch = decode_batch(message.payload)
    except WireError as error:
        salvaged = _salvage(message.payload)
        if salvaged is None:
            refuse(f"telemetry: {error}")
            return
        batch, bad = salvaged
    if batch.school != school_id:
        refuse(f"payload school {batch.school!r} does not match the topic's {school_id!r}")
        return
    total = len(batch.samples) + len(bad)
    for sample in batch.samples:
        problem = time_problem(sample.ts_ms, now_ms, limits)
        if problem is not None:
            bad.append((f"sample seq {sample.seq}: {problem}", _sample_json(sample)))
            continue
        values, problems = _checked_values(sample, school, limits)
        if problems:
            result.refused_readings += len(problems)
            reason = (
                f"sample seq {sample.seq}: {len(problems)} of {len(values)} readings refused: "
                + "; ".join(problems)
            )
            bad.append((reason, _sample_json(sample)))
        result.samples.append(
            Accepted(
                school_id,
                batch.stream,
                sample.seq,
                sample.device,
                sample.kind.value,
                sample.ts_ms,
                batch.backfill,
                message.received_ms,
                values,
            )
        )
    for reason, payload in bad:
        result.refusals.append(Refusal(message.topic, reason, payload, message.received_ms))
    if bad:
        result.log_lines.append((message.topic, f"{len(bad)} of {total} samples, the first: {bad[0][0]}"))


def _checked_values(
    sample: Sample, school: SchoolInfo, limits: Limits
) -> tuple[dict[str, float | None], list[str]]:
    """The sample's values with the unbelievable ones set to None, and why each was refused."""
    kind = sample.kind.value
    values = sample.values
    ranges = value_ranges(kind, school.pv_kwp, limits)
    problems: list[str] = []
    for quantity, value in values.items():
        if value is None:
            continue
        low, high = ranges[quantity]
        if not low <= value <= high:
            problems.append(value_problem(quantity, value, kind, school.pv_kwp, limits) or quantity)
    if not problems:
        return values, problems
    kept: dict[str, float | None] = {}
    for quantity, value in values.items():
        if value is not None:
            low, high = ranges[quantity]
            kept[quantity] = value if low <= value <= high else None
        else:
            kept[quantity] = None
    return kept, problems


def _sample_json(sample: Sample) -> bytes:
    # json rather than pydantic: NaN and infinity stay visible in the dead letter.
    return json.dumps(sample.model_dump(mode="python"), default=str).encode()


def _salvage(payload: bytes) -> tuple[TelemetryBatch, list[tuple[str, bytes]]] | None:
    """The batch without its malformed samples, and why each was refused; None if the fault is elsewhere."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
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
            bad.append((f"samples.{index}: {describe_validation_error(error)}", json.dumps(item).encode()))
    if not good or not bad:
        return None
    try:
        return TelemetryBatch.model_validate({**data, "samples": good}), bad
    except ValidationError:
        return None
