"""The ingest's own figures for people and monitors: every worker's counters (table ``ingest_workers``), the
time-series outbox's depth and the lag behind the newest reading, read from the database by any process.

`prometheus_text` renders them in Prometheus' text format (for ``GET /metrics``); `health` sums them up for
the API's health answer. The counters are per worker (label ``worker``, the MQTT client id: as many values
as ingest processes), and only grow, across restarts too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select

from cloud.db.models import Device, EventState, IngestWorker, Link, Sample
from cloud.ingest.stats import LagHistogram
from cloud.timeseries.outbox import Depth, depth

# A worker whose last sign of life is older than this is taken for dead [ms].
ALIVE_WITHIN_MS = 30_000
# Health turns degraded when the newest reading is older than this, or the outbox's oldest line is [s].
LAG_DEGRADED_S = 300.0
SPOOL_DEGRADED_S = 300.0


@dataclass(frozen=True)
class WorkerFigures:
    """One worker's row of ``ingest_workers``."""

    client_id: str
    group: str
    started_ms: int
    heartbeat_ms: int
    counters: dict[str, int]
    newest_ts_ms: int | None
    commit_lag_ms: int | None
    queued: int
    lag: LagHistogram
    broker_cert_not_after_ms: int | None


@dataclass(frozen=True)
class DeviceFigures:
    """A device of the register and the time of its newest stored sample (None: none is kept, never sent or
    all pruned)."""

    school_id: str
    device_id: str
    kind: str
    newest_ts_ms: int | None


@dataclass(frozen=True)
class ConditionFigures:
    """A condition a school's agent reported (`common.wire.HealthEvent`): raised now or cleared."""

    school_id: str
    device_id: str
    code: str
    severity: str
    active: bool


@dataclass(frozen=True)
class IngestFigures:
    """Everything `prometheus_text` and `health` show, read at one moment."""

    workers: Sequence[WorkerFigures]
    spool: Depth
    devices: Sequence[DeviceFigures]
    # Each school's link to the broker as its retained status last said: True online, False offline.
    links_online: Mapping[str, bool]
    conditions: Sequence[ConditionFigures]
    # The data clock (LOKALNIE_CLOCK) and real time when read [ms since the epoch].
    now_ms: int
    real_now_ms: int

    @property
    def newest_ts_ms(self) -> int | None:
        found = [worker.newest_ts_ms for worker in self.workers if worker.newest_ts_ms is not None]
        return max(found) if found else None

    @property
    def lag_s(self) -> float | None:
        """How far the newest stored reading lies behind the clock [s]; None before the first."""
        newest = self.newest_ts_ms
        return max(self.now_ms - newest, 0) / 1000.0 if newest is not None else None

    def alive(self, worker: WorkerFigures) -> bool:
        return self.real_now_ms - worker.heartbeat_ms <= ALIVE_WITHIN_MS


# (column of ingest_workers, metric name without prefix, help)
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages", "messages", "Messages taken from the broker and committed (stored or refused)."),
    ("samples", "samples", "Samples stored (a sample: one poll of one device)."),
    ("readings", "readings", "Readings stored (a reading: one value of one sample)."),
    ("duplicates", "duplicate_samples", "Samples received again and dropped (stored before)."),
    ("dead_letters", "dead_letters", "Rows written to the dead-letter table."),
    (
        "refused_readings",
        "refused_readings",
        "Readings refused one by one (NaN, beyond what a device shows).",
    ),
    ("statuses", "status_messages", "Status messages applied to the schools' links."),
    ("events", "events", "Health events stored."),
    ("corrections", "counter_corrections", "Counter steps newly found to be resets, rollovers or jumps."),
    ("intervals", "intervals_written", "15-minute intervals written (new or changed)."),
    ("transactions", "transactions", "Transactions committed."),
    ("timeseries_lines", "timeseries_lines_written", "Lines the time-series database accepted."),
    ("timeseries_batches", "timeseries_requests", "Write requests the time-series database accepted."),
    (
        "timeseries_failures",
        "timeseries_write_failures",
        "Write requests that failed and wait to be sent again.",
    ),
)


def collect(connection: Connection, now_ms: int, real_now_ms: int) -> IngestFigures:
    """Read every worker's row, the outbox's depth, every device's newest sample, the schools' links and the
    agents' conditions."""
    return IngestFigures(
        read_workers(connection),
        depth(connection),
        _devices(connection),
        _links_online(connection),
        _conditions(connection),
        now_ms,
        real_now_ms,
    )


def collect_totals(connection: Connection, now_ms: int, real_now_ms: int) -> IngestFigures:
    """The workers' rows and the outbox's depth only: what the public health answer needs, a small query
    each at any scale (the devices' figures cost an index lookup a device, bench/bench_metrics_scrape.py)."""
    return IngestFigures(read_workers(connection), depth(connection), [], {}, [], now_ms, real_now_ms)


def read_workers(connection: Connection) -> list[WorkerFigures]:
    """Every ingest worker's row of ``ingest_workers``."""
    workers = []
    table = IngestWorker.__table__
    for row in connection.execute(select(table).order_by(table.c.client_id)).mappings():
        histogram = row["lag_histogram"]
        if isinstance(histogram, str):
            histogram = json.loads(histogram)
        workers.append(
            WorkerFigures(
                client_id=row["client_id"],
                group=row["group_name"],
                started_ms=row["started_ms"],
                heartbeat_ms=row["heartbeat_ms"],
                counters={column: int(row[column]) for column, _, _ in _COUNTERS},
                newest_ts_ms=row["newest_ts_ms"],
                commit_lag_ms=row["commit_lag_ms"],
                queued=row["queued"],
                lag=LagHistogram.from_json(histogram if isinstance(histogram, dict) else None),
                broker_cert_not_after_ms=row["broker_cert_not_after_ms"],
            )
        )
    return workers


def _devices(connection: Connection) -> list[DeviceFigures]:
    # One index lookup per device (ix_samples_school_device_ts), however many samples are kept.
    newest = (
        select(func.max(Sample.ts_ms))
        .where(Sample.school_id == Device.school_id, Sample.device_id == Device.device_id)
        .scalar_subquery()
    )
    query = select(Device.school_id, Device.device_id, Device.kind, newest).order_by(
        Device.school_id, Device.device_id
    )
    return [DeviceFigures(*row) for row in connection.execute(query)]


def _conditions(connection: Connection) -> list[ConditionFigures]:
    state = EventState.__table__.c
    query = select(state.school_id, state.device_id, state.code, state.severity, state.active).order_by(
        state.school_id, state.device_id, state.code
    )
    return [ConditionFigures(*row) for row in connection.execute(query)]


def _links_online(connection: Connection) -> dict[str, bool]:
    query = select(Link.school_id, Link.state).order_by(Link.school_id)
    return {school: state == "online" for school, state in connection.execute(query)}


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    escaped = (f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + ",".join(escaped) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _seconds_per_worker(
    workers: Sequence[WorkerFigures], ms_of: Callable[[WorkerFigures], int | None]
) -> list[tuple[str, float]]:
    """A sample in seconds per worker that has the value (given in ms)."""
    return [(_labels(worker=w.client_id), ms / 1000.0) for w in workers if (ms := ms_of(w)) is not None]


def prometheus_text(figures: IngestFigures, prefix: str = "lokalnie") -> str:
    """The figures in Prometheus' text exposition format (version 0.0.4)."""
    out: list[str] = []

    def family(name: str, kind: str, text: str, samples: Sequence[tuple[str, float | int]]) -> None:
        out.append(f"# HELP {prefix}_{name} {text}")
        out.append(f"# TYPE {prefix}_{name} {kind}")
        out.extend(f"{prefix}_{name}{labels} {_number(value)}" for labels, value in samples)

    workers = figures.workers
    for column, name, text in _COUNTERS:
        family(
            f"ingest_{name}_total",
            "counter",
            text,
            [(_labels(worker=w.client_id), w.counters[column]) for w in workers],
        )
    family(
        "ingest_up",
        "gauge",
        f"1 if the worker gave a sign of life within the last {ALIVE_WITHIN_MS // 1000} s.",
        [(_labels(worker=w.client_id, group=w.group), int(figures.alive(w))) for w in workers],
    )
    family(
        "ingest_queued_messages",
        "gauge",
        "Messages received and not yet stored, at the worker's last heartbeat.",
        [(_labels(worker=w.client_id), w.queued) for w in workers],
    )
    family(
        "ingest_last_seen_timestamp_seconds",
        "gauge",
        "Real time of the worker's last commit or heartbeat.",
        _seconds_per_worker(workers, lambda w: w.heartbeat_ms),
    )
    family(
        "ingest_newest_reading_timestamp_seconds",
        "gauge",
        "Time of the newest sample the worker stored.",
        _seconds_per_worker(workers, lambda w: w.newest_ts_ms),
    )
    family(
        "ingest_commit_lag_seconds",
        "gauge",
        "In the worker's last transaction with live samples: commit time minus the newest sample's time.",
        _seconds_per_worker(workers, lambda w: w.commit_lag_ms),
    )
    out.append(
        f"# HELP {prefix}_ingest_sample_lag_seconds Commit time minus sample time of each live "
        "(not backfilled) sample."
    )
    out.append(f"# TYPE {prefix}_ingest_sample_lag_seconds histogram")
    for w in workers:
        name = f"{prefix}_ingest_sample_lag_seconds"
        for bound, cumulative in w.lag.cumulative():
            out.append(f"{name}_bucket{_labels(worker=w.client_id, le=bound)} {cumulative}")
        out.append(
            f"{prefix}_ingest_sample_lag_seconds_sum{_labels(worker=w.client_id)} {_number(w.lag.sum_s)}"
        )
        out.append(f"{prefix}_ingest_sample_lag_seconds_count{_labels(worker=w.client_id)} {w.lag.total}")
    family(
        "ingest_broker_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the TLS certificate the broker presents expires, as the worker last checked (hourly).",
        _seconds_per_worker(workers, lambda w: w.broker_cert_not_after_ms),
    )
    lag_s = figures.lag_s
    family(
        "ingest_lag_seconds",
        "gauge",
        "How far the newest stored reading of any school lies behind the clock.",
        [("", lag_s)] if lag_s is not None else [],
    )
    family(
        "device_sample_age_seconds",
        "gauge",
        "How far the newest stored sample of a device of the register lies behind the clock.",
        [
            (
                _labels(school=d.school_id, device=d.device_id, kind=d.kind),
                max(figures.now_ms - d.newest_ts_ms, 0) / 1000.0,
            )
            for d in figures.devices
            if d.newest_ts_ms is not None
        ],
    )
    family(
        "school_link_up",
        "gauge",
        "1 if the school's edge agent is connected to the broker (its retained status), else 0.",
        [(_labels(school=school), int(online)) for school, online in figures.links_online.items()],
    )
    family(
        "school_condition_active",
        "gauge",
        "1 while a condition a school's agent reported (device unreachable, outbox full, ...) is raised, "
        "0 once cleared; device is empty for the agent's own conditions.",
        [
            (_labels(school=c.school_id, device=c.device_id, code=c.code, severity=c.severity), int(c.active))
            for c in figures.conditions
        ],
    )
    spool = figures.spool
    family("timeseries_spool_lines", "gauge", "Lines waiting in the time-series outbox.", [("", spool.lines)])
    family("timeseries_spool_batches", "gauge", "Rows waiting in the time-series outbox.", [("", spool.rows)])
    family(
        "timeseries_spool_oldest_age_seconds",
        "gauge",
        "Age of the oldest row waiting in the time-series outbox (real time).",
        [("", max(figures.real_now_ms - spool.oldest_created_ms, 0) / 1000.0)]
        if spool.oldest_created_ms is not None
        else [],
    )
    return "\n".join(out) + "\n"


class WorkerHealth(BaseModel):
    """One ingest process as the health answer shows it."""

    worker: str
    alive: bool
    last_seen_s: float = Field(description="Seconds since the worker's last commit or heartbeat.")
    queued: int


class IngestHealth(BaseModel):
    """The ingest in the API's health answer: ``ok``, ``degraded`` (``problems`` says why) or ``idle`` (no
    ingest process has ever run against this database)."""

    status: str
    problems: list[str]
    workers: list[WorkerHealth]
    messages: int
    samples: int
    readings: int
    duplicates: int
    dead_letters: int
    refused_readings: int
    spool_lines: int
    spool_oldest_age_s: float | None
    lag_s: float | None = Field(description="How far the newest stored reading lies behind the clock [s].")


def health(figures: IngestFigures) -> IngestHealth:
    """The ingest's state for the health answer."""
    workers = [
        WorkerHealth(
            worker=w.client_id,
            alive=figures.alive(w),
            last_seen_s=max(figures.real_now_ms - w.heartbeat_ms, 0) / 1000.0,
            queued=w.queued,
        )
        for w in figures.workers
    ]
    spool = figures.spool
    spool_age_s = (
        max(figures.real_now_ms - spool.oldest_created_ms, 0) / 1000.0 if spool.oldest_created_ms else None
    )
    problems: list[str] = []
    if workers and not any(worker.alive for worker in workers):
        problems.append("no ingest worker is alive")
    lag_s = figures.lag_s
    if lag_s is not None and lag_s > LAG_DEGRADED_S:
        problems.append(f"the newest reading is {lag_s:.0f} s old")
    if spool_age_s is not None and spool_age_s > SPOOL_DEGRADED_S:
        problems.append(f"lines have waited {spool_age_s:.0f} s for the time-series database")

    def total(column: str) -> int:
        return sum(w.counters[column] for w in figures.workers)

    return IngestHealth(
        status="idle" if not workers else ("degraded" if problems else "ok"),
        problems=problems,
        workers=workers,
        messages=total("messages"),
        samples=total("samples"),
        readings=total("readings"),
        duplicates=total("duplicates"),
        dead_letters=total("dead_letters"),
        refused_readings=total("refused_readings"),
        spool_lines=spool.lines,
        spool_oldest_age_s=spool_age_s,
        lag_s=lag_s,
    )
