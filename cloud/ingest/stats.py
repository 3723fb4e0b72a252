"""The ingest workers' counters, kept in the database (table ``ingest_workers``, one row per MQTT client id).

A worker adds to its row in the transaction that stores what it counts, so the counters agree with the data
whatever happens to the process (a transaction rolled back counts nothing), survive restarts, and can be
read by any process: the API serves them at ``/metrics`` for all workers at once (`cloud.ingest.metrics`).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from sqlalchemy import Connection, Table

from cloud.db.models import IngestWorker
from cloud.db.upserts import upsert

_WORKERS: Table = IngestWorker.__table__  # type: ignore[assignment]


@dataclass
class StoreReport:
    """What one or more calls of `cloud.ingest.store.TelemetryStore.store` did."""

    messages: int = 0
    samples_stored: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    refused_readings: int = 0
    statuses: int = 0
    events_stored: int = 0
    event_duplicates: int = 0
    intervals: int = 0
    corrections: int = 0
    timeseries_lines: int = 0
    transactions: int = 0
    # The newest sample time stored [ms since the epoch], None before the first.
    newest_ts_ms: int | None = None
    # How long after its time each live (not backfilled) sample was committed [ms]; not added up.
    lags_ms: list[int] = field(default_factory=list, repr=False)

    def add(self, other: StoreReport) -> None:
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name == "newest_ts_ms":
                if theirs is not None and (mine is None or theirs > mine):
                    setattr(self, item.name, theirs)
            elif item.name != "lags_ms":
                setattr(self, item.name, mine + theirs)


# The upper bounds of the lag histogram's buckets [s]; the last bucket (+Inf) takes the rest.
LAG_BOUNDS_S: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
INF = "+Inf"


def lag_keys() -> list[str]:
    """The histogram's bucket names: each bound as Prometheus writes it, then +Inf."""
    return [f"{bound:g}" for bound in LAG_BOUNDS_S] + [INF]


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(lag_keys(), 0)


@dataclass
class LagHistogram:
    """Live samples by commit lag (commit time minus sample time), per bucket (not cumulative), and the
    sum of their lags [s]."""

    counts: dict[str, int] = field(default_factory=_zero_counts)
    sum_s: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> LagHistogram:
        histogram = cls()
        if data:
            counts = data.get("counts", {})
            if isinstance(counts, dict):
                for key in histogram.counts:
                    histogram.counts[key] = int(counts.get(key, 0))
            total = data.get("sum_s", 0.0)
            histogram.sum_s = float(total) if isinstance(total, int | float) else 0.0
        return histogram

    def to_json(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "sum_s": self.sum_s}

    def plus(self, lags_ms: Iterable[int]) -> LagHistogram:
        """A new histogram with ``lags_ms`` added."""
        result = LagHistogram(dict(self.counts), self.sum_s)
        keys = lag_keys()
        for lag_ms in lags_ms:
            lag_s = max(lag_ms, 0) / 1000.0
            result.counts[keys[bisect.bisect_left(LAG_BOUNDS_S, lag_s)]] += 1
            result.sum_s += lag_s
        return result

    def minus(self, earlier: LagHistogram) -> LagHistogram:
        """What was added since ``earlier``."""
        return LagHistogram(
            {key: self.counts[key] - earlier.counts[key] for key in self.counts}, self.sum_s - earlier.sum_s
        )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def cumulative(self) -> list[tuple[str, int]]:
        """(bound, samples with a lag at or below it), as Prometheus' buckets."""
        running, found = 0, []
        for key in lag_keys():
            running += self.counts[key]
            found.append((key, running))
        return found

    def quantile(self, q: float) -> float | None:
        """The q-quantile [s], interpolated linearly within its bucket as Prometheus' histogram_quantile
        does; None without samples; the highest finite bound when it falls in the +Inf bucket."""
        total = self.total
        if total == 0:
            return None
        rank = q * total
        lower, below = 0.0, 0
        for bound, (key, cumulative) in zip((*LAG_BOUNDS_S, None), self.cumulative(), strict=True):
            if cumulative >= rank:
                if bound is None:
                    return LAG_BOUNDS_S[-1]
                inside = self.counts[key]
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            if bound is not None:
                lower = bound
            below = cumulative
        return LAG_BOUNDS_S[-1]


_COUNTED = (
    ("messages", "messages"),
    ("samples", "samples_stored"),
    ("readings", "readings_stored"),
    ("duplicates", "duplicates"),
    ("dead_letters", "dead_letters"),
    ("refused_readings", "refused_readings"),
    ("statuses", "statuses"),
    ("events", "events_stored"),
    ("corrections", "corrections"),
    ("intervals", "intervals"),
)


def register_worker(connection: Connection, client_id: str, group: str, started_ms: int) -> None:
    """Create the worker's row, or mark an existing one (a restart under the same id) as started again."""
    statement = upsert(
        _WORKERS, connection.dialect.name, ["client_id"], ["group_name", "started_ms", "heartbeat_ms"]
    )
    connection.execute(
        statement,
        {
            "client_id": client_id,
            "group_name": group,
            "started_ms": started_ms,
            "heartbeat_ms": started_ms,
            **{column: 0 for column, _ in _COUNTED},
            "transactions": 0,
            "queued": 0,
            "timeseries_lines": 0,
            "timeseries_batches": 0,
            "timeseries_failures": 0,
            "lag_histogram": LagHistogram().to_json(),
        },
    )


def load_lag_histogram(connection: Connection, client_id: str) -> LagHistogram:
    """The worker's lag histogram as stored."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    stored = connection.exec_driver_sql(
        f"SELECT lag_histogram FROM ingest_workers WHERE client_id = {p}", (client_id,)
    ).scalar()
    if isinstance(stored, str):
        stored = json.loads(stored)
    return LagHistogram.from_json(stored if isinstance(stored, dict) else None)


def count(
    connection: Connection,
    client_id: str,
    report: StoreReport,
    real_now_ms: int,
    lag_ms: int | None,
    lags_ms: Sequence[int] = (),
) -> None:
    """Add one transaction's ``report``, and its samples' lags ``lags_ms`` to the lag histogram, to the
    worker's row, in that transaction."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    increments = ", ".join(f"{column} = {column} + {p}" for column, _ in _COUNTED)
    newest = report.newest_ts_ms if report.newest_ts_ms is not None else -1
    lag_set = f", commit_lag_ms = {p}" if lag_ms is not None else ""
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET {increments}, transactions = transactions + 1, heartbeat_ms = {p}, "
        f"newest_ts_ms = CASE WHEN COALESCE(newest_ts_ms, -1) < {p} THEN {p} ELSE newest_ts_ms END"
        f"{lag_set} WHERE client_id = {p}",
        (
            *(getattr(report, name) for _, name in _COUNTED),
            real_now_ms,
            newest,
            newest,
            *((lag_ms,) if lag_ms is not None else ()),
            client_id,
        ),
    )
    if not lags_ms:
        return
    # Read after the update above, which holds the row until the commit: a worker's writers, committing side
    # by side, each add their lags to what the one before committed.
    histogram = load_lag_histogram(connection, client_id).plus(lags_ms)
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET lag_histogram = {p} WHERE client_id = {p}",
        (json.dumps(histogram.to_json()), client_id),
    )


def forget_worker(connection: Connection, client_id: str, alive_since_ms: int) -> bool:
    """Delete a retired worker's row (its counters leave /metrics with it) unless it gave a sign of life at or
    after ``alive_since_ms``; whether a row was deleted."""
    deleted = connection.execute(
        _WORKERS.delete().where(_WORKERS.c.client_id == client_id, _WORKERS.c.heartbeat_ms < alive_since_ms)
    )
    return bool(deleted.rowcount)


def record_broker_certificate(connection: Connection, client_id: str, not_after_ms: int) -> None:
    """Record when the broker's certificate expires, as the worker saw it."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET broker_cert_not_after_ms = {p} WHERE client_id = {p}",
        (not_after_ms, client_id),
    )


def heartbeat(connection: Connection, client_id: str, real_now_ms: int, queued: int) -> None:
    """Say the worker is alive, with how many messages wait in its memory."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET heartbeat_ms = {p}, queued = {p} WHERE client_id = {p}",
        (real_now_ms, queued, client_id),
    )
