"""The wire contract between a school's edge agent and the cloud: MQTT topics, payloads, QoS and retain rules.

This module is the only code that the `edge` and `cloud` packages share about MQTT; `docs/wire.md`
describes the same contract for people. Conventions fixed here, once:

* Times are integer milliseconds since the Unix epoch, UTC (``ts_ms``).
* Power is in W, energy counters are cumulative Wh that only grow (``..._wh``).
* A grid meter's power is positive when the school buys from the grid, negative when it exports.
* Every sample carries ``seq``, the row identity of the edge outbox it came from: monotonic per
  ``(school, stream)``, where ``stream`` names one outbox (a new SD card starts a new stream). The cloud
  drops a sample it has already stored under the same ``(school, stream, seq)``.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROTOCOL_VERSION: Literal[1] = 1
TOPIC_ROOT = "lokalnie/v1"

# QoS 1 everywhere: at-least-once, with duplicates removed by the cloud.
QOS = 1
# The status topic is retained (a new subscriber learns at once whether a school is online);
# telemetry and events are not (a stale reading must never look live).
RETAIN_STATUS = True
RETAIN_TELEMETRY = False

MAX_SAMPLES_PER_BATCH = 500
MAX_PAYLOAD_BYTES = 256 * 1024

SCHOOL_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
QUANTITY_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
_SCHOOL_ID = re.compile(SCHOOL_ID_PATTERN)


class Channel(StrEnum):
    """The kinds of topic under a school."""

    TELEMETRY = "telemetry"
    STATUS = "status"
    EVENTS = "events"
    CONFIG = "config"


def school_topic(school_id: str, channel: Channel) -> str:
    """The topic of one school's channel, e.g. ``lokalnie/v1/sp5/telemetry``."""
    if not _SCHOOL_ID.match(school_id):
        raise ValueError(f"school id {school_id!r} does not match {SCHOOL_ID_PATTERN}")
    return f"{TOPIC_ROOT}/{school_id}/{channel.value}"


def all_schools_filter(channel: Channel) -> str:
    """The subscription filter for one channel of every school."""
    return f"{TOPIC_ROOT}/+/{channel.value}"


def shared_filter(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: the broker spreads the messages over the group's members."""
    return f"$share/{group}/{topic_filter}"


@functools.lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> tuple[str, Channel]:
    """Split a school topic into (school id, channel); `WireError` if it is not one of ours.

    Cached: the ingest parses every message's topic, and a school sends on the same few.
    """
    parts = topic.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise WireError(f"topic {topic!r} is not under {TOPIC_ROOT}/<school>/<channel>")
    school_id, channel_name = parts[2], parts[3]
    if not _SCHOOL_ID.match(school_id):
        raise WireError(f"topic {topic!r} names an invalid school id")
    try:
        return school_id, Channel(channel_name)
    except ValueError:
        raise WireError(f"topic {topic!r} has an unknown channel {channel_name!r}") from None


class WireError(ValueError):
    """A message that breaks the contract; the text says why, for the dead-letter table."""


class DeviceKind(StrEnum):
    """What a device is, which fixes the quantities the cloud expects of it."""

    PV_INVERTER = "pv_inverter"
    GRID_METER = "grid_meter"


# The cumulative counters from which the cloud derives interval energies, per kind of device.
COUNTERS: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.PV_INVERTER: ("energy_wh",),
    DeviceKind.GRID_METER: ("import_wh", "export_wh"),
}
# The instantaneous power of each kind, in W (a grid meter's is positive when importing).
POWER_QUANTITY = "power_w"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


EpochMs = Annotated[int, Field(ge=0, lt=32503680000000)]  # before year 3000


class Sample(_Strict):
    """Everything one poll read from one device at one time. Each value is one reading."""

    seq: Annotated[int, Field(ge=1)]
    device: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    kind: DeviceKind
    ts_ms: EpochMs
    # None where the device said "not implemented" or a value could not be read.
    values: dict[Annotated[str, Field(pattern=QUANTITY_PATTERN)], float | None]


class TelemetryBatch(_Strict):
    """One MQTT message on a school's telemetry topic."""

    v: Literal[1] = PROTOCOL_VERSION
    school: Annotated[str, Field(pattern=SCHOOL_ID_PATTERN)]
    stream: Annotated[str, Field(pattern=r"^[0-9a-f]{8,32}$")]
    # True when the samples are a backlog replayed after an outage, not live data.
    backfill: bool = False
    sent_ms: EpochMs
    samples: Annotated[list[Sample], Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH)]


class LinkState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(_Strict):
    """The retained message on a school's status topic; the broker publishes the offline one as the will."""

    v: Literal[1] = PROTOCOL_VERSION
    school: Annotated[str, Field(pattern=SCHOOL_ID_PATTERN)]
    state: LinkState
    # Absent in the will, which is written before the agent knows when it will die.
    since_ms: EpochMs | None = None
    agent: str = ""


class Severity(StrEnum):
    """How urgently a person must act on a health event."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# The code of the first event from a new outbox file (a first start, a new SD card, a deleted outbox). Its
# agent knows nothing of the conditions raised before, so it could never clear them: the cloud clears every
# condition of the school raised before this event, and the agent raises again, within two polls, what still
# holds.
OUTBOX_CREATED = "outbox_created"


class HealthEvent(_Strict):
    """A change in a school's health, on its events topic: a condition raised (``active``) or cleared.

    ``code`` names the condition (``device_unreachable``, ``inverter_fault``, ``counter_backwards``,
    ``clock_jump``, ``outbox_dropped``, ...); together with ``device`` it identifies the condition, so that a
    later message with ``active`` false clears the one raised before. ``message_pl`` is what the school's
    caretaker reads.
    """

    v: Literal[1] = PROTOCOL_VERSION
    school: Annotated[str, Field(pattern=SCHOOL_ID_PATTERN)]
    # The outbox row identity of the event, as for samples: the cloud stores each (school, stream, seq) once.
    stream: Annotated[str, Field(pattern=r"^[0-9a-f]{8,32}$")]
    seq: Annotated[int, Field(ge=1)]
    device: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)] | None = None
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    severity: Severity
    active: bool
    ts_ms: EpochMs
    message_pl: Annotated[str, Field(min_length=1, max_length=500)]
    details: dict[Annotated[str, Field(pattern=QUANTITY_PATTERN)], float | str | None] = {}


def encode(message: BaseModel) -> bytes:
    """The JSON bytes of a wire message."""
    return message.model_dump_json(exclude_none=False).encode()


def decode_batch(payload: bytes) -> TelemetryBatch:
    """Parse a telemetry payload; `WireError` with a readable reason if it breaks the contract."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
    try:
        return TelemetryBatch.model_validate_json(payload)
    except ValidationError as error:
        raise WireError(_first_errors(error)) from None


def decode_event(payload: bytes) -> HealthEvent:
    """Parse a health event; `WireError` with a readable reason if it breaks the contract."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
    try:
        return HealthEvent.model_validate_json(payload)
    except ValidationError as error:
        raise WireError(_first_errors(error)) from None


def decode_status(payload: bytes) -> Status:
    """Parse a status payload; `WireError` with a readable reason if it breaks the contract."""
    try:
        return Status.model_validate_json(payload)
    except ValidationError as error:
        raise WireError(_first_errors(error)) from None


def _first_errors(error: ValidationError, limit: int = 3) -> str:
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
