"""Synthetic telemetry for the ingest's tests and benchmarks: many schools, each with a PV inverter and a grid
meter polled on the clock, sending the batches their edge agents would send (`common.wire.TelemetryBatch`).

The readings are the quantities the device profiles publish (13 per sample), and the counters grow as the
power says, so interval energies are exact differences on the quarter-hour boundaries. Everything is
deterministic: a school's sample at a given poll is the same whenever it is generated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from common.wire import Channel, DeviceKind, Sample, TelemetryBatch, encode, school_topic
from tests.cloud.conftest import make_site

# The schools are tests.cloud.conftest's: one PV inverter ("inverter"), one grid meter ("meter"), this roof.
PV_KWP = make_site("any").pv_kwp
# The quantities firmware-config/profiles publish: 13 for the inverter, 13 for the meter.
INVERTER_QUANTITIES = (
    "current_a",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "power_w",
    "frequency_hz",
    "energy_wh",
    "dc_current_a",
    "dc_voltage_v",
    "dc_power_w",
    "cabinet_temperature_c",
    "operating_state",
    "event_flags",
)
METER_QUANTITIES = (
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "power_l1_w",
    "power_l2_w",
    "power_l3_w",
    "power_w",
    "frequency_hz",
    "import_wh",
    "export_wh",
)
READINGS_PER_POLL = len(INVERTER_QUANTITIES) + len(METER_QUANTITIES)


def school_ids(count: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{index:05d}" for index in range(count)]


def _pv_power_w(ts_ms: int, phase: float) -> float:
    """A smooth daytime curve with a little per-school variation, never above the roof's rating."""
    day_s = (ts_ms / 1000.0) % 86_400.0
    sun = math.sin(math.pi * (day_s - 5 * 3600.0) / (14 * 3600.0))
    return max(0.0, 0.8 * PV_KWP * 1000.0 * sun * (0.9 + 0.1 * math.sin(day_s / 600.0 + phase)))


@dataclass(frozen=True)
class SchoolStream:
    """One school's edge agent: its outbox stream and how it numbers and times its samples."""

    school_id: str
    stream: str
    start_ms: int
    poll_period_ms: int = 10_000
    # A school's counters start at values of their own.
    offset: int = 0

    def poll(self, index: int) -> list[Sample]:
        """The two samples (inverter, meter) of the poll number ``index`` (0, 1, 2, ...)."""
        ts_ms = self.start_ms + index * self.poll_period_ms
        phase = (self.offset % 97) / 10.0
        # Counters: the exact integral of a constant power over each poll period, so they are linear.
        pv_w = _pv_power_w(ts_ms, phase)
        load_w = 6_000.0 + 2_000.0 * math.sin(ts_ms / 3.6e6 + phase)
        grid_w = load_w - pv_w
        hours = index * self.poll_period_ms / 3.6e6
        energy_wh = 10_000_000.0 + 1_000.0 * self.offset + 20_000.0 * hours
        import_wh = 2_000_000.0 + 100.0 * self.offset + 6_000.0 * hours
        export_wh = 500_000.0 + 10.0 * self.offset + 4_000.0 * hours
        inverter = dict(
            zip(
                INVERTER_QUANTITIES,
                (
                    pv_w / 690.0,
                    230.0 + phase,
                    231.0,
                    229.5,
                    pv_w,
                    50.0,
                    energy_wh,
                    pv_w / 600.0,
                    600.0,
                    pv_w * 1.02,
                    35.0 + phase,
                    4.0,
                    0.0,
                ),
                strict=True,
            )
        )
        meter = dict(
            zip(
                METER_QUANTITIES,
                (
                    230.1,
                    230.2,
                    230.3,
                    abs(grid_w) / 690.0,
                    abs(grid_w) / 690.0,
                    abs(grid_w) / 690.0,
                    grid_w / 3,
                    grid_w / 3,
                    grid_w / 3,
                    grid_w,
                    49.99,
                    import_wh,
                    export_wh,
                ),
                strict=True,
            )
        )
        seq = 2 * index + 1
        return [
            Sample(seq=seq, device="inverter", kind=DeviceKind.PV_INVERTER, ts_ms=ts_ms, values=inverter),
            Sample(seq=seq + 1, device="meter", kind=DeviceKind.GRID_METER, ts_ms=ts_ms, values=meter),
        ]

    def batch(self, first_poll: int, polls: int = 1, sent_ms: int | None = None) -> TelemetryBatch:
        samples = [sample for index in range(first_poll, first_poll + polls) for sample in self.poll(index)]
        return TelemetryBatch(
            school=self.school_id,
            stream=self.stream,
            sent_ms=sent_ms if sent_ms is not None else samples[-1].ts_ms,
            samples=samples,
        )

    @property
    def topic(self) -> str:
        return school_topic(self.school_id, Channel.TELEMETRY)


def streams(
    ids: list[str], start_ms: int, poll_period_ms: int = 10_000, stream: str = "0a1b2c3d"
) -> list[SchoolStream]:
    """One stream per school, all polling on the same clock."""
    return [
        SchoolStream(school_id, stream, start_ms, poll_period_ms, offset=index)
        for index, school_id in enumerate(ids)
    ]


def messages(
    schools: list[SchoolStream], polls: int, polls_per_message: int = 1
) -> Iterator[tuple[str, bytes, int]]:
    """(topic, payload, samples) of every school's messages, poll by poll, as a fleet would send them."""
    for first in range(0, polls, polls_per_message):
        count = min(polls_per_message, polls - first)
        for school in schools:
            batch = school.batch(first, count)
            yield school.topic, encode(batch), len(batch.samples)
