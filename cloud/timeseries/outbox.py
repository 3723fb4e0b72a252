"""The durable spool of the time-series sink: line protocol waiting in the relational store.

The ingest adds the lines that a transaction's new data makes (`spool`) in that same transaction, so a line
exists exactly when the data it describes was committed, once: a message delivered again stores nothing
new and so spools nothing. Senders (`cloud.timeseries.sink`) take the oldest rows under a lease (`claim`),
write them to the time-series database and delete them (`sent`); while that database is down the rows stay,
and any sender of any process sends them when it returns. A lease outlives the sender's request timeout
several times, so two senders never hold the same row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from cloud.timeseries.lines import body

# A sender takes rows until their lines reach this many; InfluxDB recommends 5,000 lines per request.
DEFAULT_BATCH_LINES = 5000
# How many rows a sender looks at when it takes a batch.
_CANDIDATE_ROWS = 500


def _p(connection: Connection) -> str:
    return "%s" if connection.dialect.name == "postgresql" else "?"


def spool(
    connection: Connection, lines: Sequence[str], created_ms: int, max_lines: int = DEFAULT_BATCH_LINES
) -> int:
    """Add ``lines`` to the outbox in the caller's transaction, in rows of at most ``max_lines``; the number
    of lines added."""
    if not lines:
        return 0
    p = _p(connection)
    rows = [
        (created_ms, len(chunk), body(chunk), 0)
        for chunk in (lines[start : start + max_lines] for start in range(0, len(lines), max_lines))
    ]
    connection.exec_driver_sql(
        f"INSERT INTO timeseries_outbox (created_ms, lines, body, attempts) VALUES ({p}, {p}, {p}, {p})", rows
    )
    return len(lines)


@dataclass(frozen=True)
class Lease:
    """Rows a sender took: their ids, how many lines they hold, and the request body made of them."""

    owner: str
    ids: tuple[int, ...]
    lines: int
    body: bytes


def claim(
    engine: Engine, owner: str, now_ms: int, lease_ms: int, max_lines: int = DEFAULT_BATCH_LINES
) -> Lease | None:
    """Take the oldest rows nobody holds, up to ``max_lines`` lines (at least one row), until
    ``now_ms + lease_ms``; None when there are none. ``now_ms`` is real time, shared by every sender."""
    with engine.begin() as connection:
        p = _p(connection)
        lock = " FOR UPDATE SKIP LOCKED" if connection.dialect.name == "postgresql" else ""
        candidates = connection.exec_driver_sql(
            f"SELECT id, lines FROM timeseries_outbox WHERE lease_until_ms IS NULL OR lease_until_ms < {p} "
            f"ORDER BY id LIMIT {_CANDIDATE_ROWS}{lock}",
            (now_ms,),
        ).all()
        chosen: list[int] = []
        total = 0
        for row_id, lines in candidates:
            if chosen and total + int(lines) > max_lines:
                break
            chosen.append(int(row_id))
            total += int(lines)
        if not chosen:
            return None
        marks = ", ".join([p] * len(chosen))
        taken = connection.exec_driver_sql(
            f"UPDATE timeseries_outbox SET lease_owner = {p}, lease_until_ms = {p}, attempts = attempts + 1 "
            f"WHERE id IN ({marks}) AND (lease_until_ms IS NULL OR lease_until_ms < {p}) "
            "RETURNING id, lines, body",
            (owner, now_ms + lease_ms, *chosen, now_ms),
        ).all()
    if not taken:
        return None
    taken = sorted(taken, key=lambda row: int(row[0]))
    return Lease(
        owner=owner,
        ids=tuple(int(row[0]) for row in taken),
        lines=sum(int(row[1]) for row in taken),
        body=b"".join(bytes(row[2]) for row in taken),
    )


def sent(engine: Engine, lease: Lease, worker_id: str | None) -> int:
    """Delete the rows of a lease the database accepted and count them for ``worker_id``; the number of rows
    deleted (fewer than leased if the lease ran out and another sender took some)."""
    with engine.begin() as connection:
        p = _p(connection)
        marks = ", ".join([p] * len(lease.ids))
        deleted = connection.exec_driver_sql(
            f"DELETE FROM timeseries_outbox WHERE id IN ({marks}) AND lease_owner = {p}",
            (*lease.ids, lease.owner),
        ).rowcount
        if worker_id is not None:
            connection.exec_driver_sql(
                f"UPDATE ingest_workers SET timeseries_lines = timeseries_lines + {p}, "
                f"timeseries_batches = timeseries_batches + 1 WHERE client_id = {p}",
                (lease.lines, worker_id),
            )
    return int(deleted)


def failed(engine: Engine, lease: Lease, worker_id: str | None) -> None:
    """Give the rows of a lease back at once (the database refused them or did not answer)."""
    with engine.begin() as connection:
        p = _p(connection)
        marks = ", ".join([p] * len(lease.ids))
        connection.exec_driver_sql(
            f"UPDATE timeseries_outbox SET lease_owner = NULL, lease_until_ms = NULL WHERE id IN ({marks}) "
            f"AND lease_owner = {p}",
            (*lease.ids, lease.owner),
        )
        if worker_id is not None:
            connection.exec_driver_sql(
                "UPDATE ingest_workers SET timeseries_failures = timeseries_failures + 1 "
                f"WHERE client_id = {p}",
                (worker_id,),
            )


def drop(engine: Engine, lease: Lease) -> None:
    """Delete the rows of a lease the database refused for good (their lines are malformed)."""
    with engine.begin() as connection:
        p = _p(connection)
        marks = ", ".join([p] * len(lease.ids))
        connection.exec_driver_sql(
            f"DELETE FROM timeseries_outbox WHERE id IN ({marks}) AND lease_owner = {p}",
            (*lease.ids, lease.owner),
        )


def release_own(engine: Engine, owner: str) -> int:
    """Give back the rows an earlier process of the same ``owner`` held when it died; how many. Those rows
    may or may not have reached the database: they are sent again."""
    with engine.begin() as connection:
        p = _p(connection)
        return int(
            connection.exec_driver_sql(
                "UPDATE timeseries_outbox SET lease_owner = NULL, lease_until_ms = NULL "
                f"WHERE lease_owner = {p}",
                (owner,),
            ).rowcount
        )


@dataclass(frozen=True)
class Depth:
    """How much waits in the outbox."""

    rows: int
    lines: int
    oldest_created_ms: int | None


def depth(connection: Connection) -> Depth:
    """The outbox's rows, lines and the oldest row's creation time."""
    rows, lines, oldest = connection.exec_driver_sql(
        "SELECT COUNT(*), COALESCE(SUM(lines), 0), MIN(created_ms) FROM timeseries_outbox"
    ).one()
    return Depth(int(rows), int(lines), int(oldest) if oldest is not None else None)
