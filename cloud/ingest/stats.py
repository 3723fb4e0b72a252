"""The ingest workers' counters, kept in the database (table ``ingest_workers``, one row per MQTT client id).

A worker adds to its row in the transaction that stores what it counts, so the counters agree with the data
whatever happens to the process (a transaction rolled back counts nothing), survive restarts, and can be
read by any process: the API serves them at ``/metrics`` for all workers at once (`cloud.ingest.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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

    def add(self, other: StoreReport) -> None:
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name == "newest_ts_ms":
                if theirs is not None and (mine is None or theirs > mine):
                    setattr(self, item.name, theirs)
            else:
                setattr(self, item.name, mine + theirs)


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
    zeros = {column: 0 for column, _ in _COUNTED}
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
            **zeros,
            "transactions": 0,
            "queued": 0,
            "timeseries_lines": 0,
            "timeseries_batches": 0,
            "timeseries_failures": 0,
        },
    )


def count(
    connection: Connection, client_id: str, report: StoreReport, real_now_ms: int, lag_ms: int | None
) -> None:
    """Add one transaction's ``report`` to the worker's row, in that transaction."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    increments = ", ".join(f"{column} = {column} + {p}" for column, _ in _COUNTED)
    newest = report.newest_ts_ms if report.newest_ts_ms is not None else -1
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET {increments}, transactions = transactions + 1, heartbeat_ms = {p}, "
        f"newest_ts_ms = CASE WHEN COALESCE(newest_ts_ms, -1) < {p} THEN {p} ELSE newest_ts_ms END, "
        f"commit_lag_ms = COALESCE({p}, commit_lag_ms) WHERE client_id = {p}",
        (
            *(getattr(report, name) for _, name in _COUNTED),
            real_now_ms,
            newest,
            newest,
            lag_ms,
            client_id,
        ),
    )


def heartbeat(connection: Connection, client_id: str, real_now_ms: int, queued: int) -> None:
    """Say the worker is alive, with how many messages wait in its memory."""
    p = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        f"UPDATE ingest_workers SET heartbeat_ms = {p}, queued = {p} WHERE client_id = {p}",
        (real_now_ms, queued, client_id),
    )
