"""Raw readings are kept for a retention, not forever: samples, counter readings and dead letters older than
the cutoff are deleted; the 15-minute intervals, corrections and events stay.

A school polling every 10 s writes about 17,000 sample and 26,000 counter rows a day: a city's 16 schools
some 250 million rows a year, a region's thousands of schools a hundred times that. The intervals (what the
balancing, the certificates and the dashboards read) are a few hundred rows a school a day.

What must not change is what the ingest does with any reading it still accepts:

- the cutoff is older than the oldest reading the ingest accepts (``LOKALNIE_INGEST_MAX_PAST_DAYS``;
  `cloud.settings` refuses a retention that is not longer), so no reading arriving later falls into the
  deleted time, and a redelivered message of that time is refused as too old rather than stored again;
- each counter keeps its newest reading before the cutoff: a device silent since before the cutoff still
  finds the neighbour its next reading's energy is spread from (`cloud.ingest.intervals`).

Rows are deleted per device and per day of data, each day in its own short transaction, through the indexes
the ingest already has, so the ingest keeps writing meanwhile; an interrupted prune is simply run again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from cloud.ingest.checks import DAY_MS

logger = logging.getLogger(__name__)

# The rows of one device deleted per transaction: a day of data (8,640 samples at a 10 s poll).
WINDOW_MS = DAY_MS
DEAD_LETTERS_PER_TRANSACTION = 5_000


@dataclass(frozen=True)
class PruneReport:
    """How many rows a prune deleted, by table."""

    cutoff_ms: int
    samples: int
    counter_readings: int
    dead_letters: int


def prune_raw_readings(engine: Engine, cutoff_ms: int) -> PruneReport:
    """Delete the raw rows older than ``cutoff_ms`` [epoch ms], keeping each counter's newest reading before
    it. The caller holds the cutoff to the ingest's acceptance window (`cloud.settings.Settings`)."""
    with engine.connect() as connection:
        schools = list(connection.execute(text("SELECT id FROM schools ORDER BY id")).scalars())
    samples = counter_readings = 0
    for school_id in schools:
        samples += _prune_samples(engine, school_id, cutoff_ms)
        counter_readings += _prune_counter_readings(engine, school_id, cutoff_ms)
    report = PruneReport(cutoff_ms, samples, counter_readings, _prune_dead_letters(engine, cutoff_ms))
    logger.info(
        "pruned the raw rows older than %d ms: %d samples, %d counter readings, %d dead letters",
        cutoff_ms,
        report.samples,
        report.counter_readings,
        report.dead_letters,
    )
    return report


def _next_values(connection: Connection, sql: str, parameters: Mapping[str, str]) -> list[str]:
    """Every value of the column ``sql`` selects the next of (``MIN(column) ... > :last``), one index lookup
    each: a loose index scan. The tables hold millions of rows a school, and a device taken out of the
    register may still have rows, so the keys are read from the rows themselves."""
    values: list[str] = []
    while (
        value := connection.execute(text(sql), {**parameters, "last": values[-1] if values else ""}).scalar()
    ) is not None:
        values.append(value)
    return values


def _delete_by_day(
    engine: Engine, table: str, key_sql: str, key: Mapping[str, str], oldest_ms: int, until_ms: int
) -> int:
    """Delete the rows of ``table`` matching ``key_sql`` older than ``until_ms``, a day of data a
    transaction from ``oldest_ms``, skipping days without rows (a device silent for a year costs no
    transactions for that year)."""
    deleted = 0
    start_ms: int | None = oldest_ms
    while start_ms is not None and start_ms < until_ms:
        upto = min(start_ms + WINDOW_MS, until_ms)
        parameters = {**key, "start": start_ms, "upto": upto}
        where = f"FROM {table} WHERE {key_sql} AND ts_ms"
        with engine.begin() as connection:
            # From the window's start, not from the beginning: the index still holds the rows deleted
            # before until a vacuum, and each delete would walk them all again.
            deleted += (
                connection.execute(text(f"DELETE {where} >= :start AND ts_ms < :upto"), parameters).rowcount
                or 0
            )
            start_ms = connection.execute(text(f"SELECT MIN(ts_ms) {where} >= :upto"), parameters).scalar()
    return deleted


def _prune_samples(engine: Engine, school_id: str, cutoff_ms: int) -> int:
    school = {"school": school_id}
    with engine.connect() as connection:
        devices = _next_values(
            connection,
            "SELECT MIN(device_id) FROM samples WHERE school_id = :school AND device_id > :last",
            school,
        )
        oldest = {
            device: connection.execute(
                text("SELECT MIN(ts_ms) FROM samples WHERE school_id = :school AND device_id = :device"),
                {**school, "device": device},
            ).scalar()
            for device in devices
        }
    return sum(
        _delete_by_day(
            engine,
            "samples",
            "school_id = :school AND device_id = :device",
            {**school, "device": device},
            oldest_ms,
            cutoff_ms,
        )
        for device, oldest_ms in oldest.items()
        if oldest_ms is not None
    )


def _prune_counter_readings(engine: Engine, school_id: str, cutoff_ms: int) -> int:
    school = {"school": school_id}
    # Per counter: its oldest reading, and the newest before the cutoff, which stays.
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    with engine.connect() as connection:
        devices = _next_values(
            connection,
            "SELECT MIN(device_id) FROM counter_readings WHERE school_id = :school AND device_id > :last",
            school,
        )
        for device in devices:
            key = {**school, "device": device}
            quantities = _next_values(
                connection,
                "SELECT MIN(quantity) FROM counter_readings "
                "WHERE school_id = :school AND device_id = :device AND quantity > :last",
                key,
            )
            for quantity in quantities:
                oldest, kept = connection.execute(
                    text(
                        "SELECT MIN(ts_ms), MAX(ts_ms) FROM counter_readings WHERE school_id = :school "
                        "AND device_id = :device AND quantity = :quantity AND ts_ms < :cutoff"
                    ),
                    {**key, "quantity": quantity, "cutoff": cutoff_ms},
                ).one()
                if kept is not None:
                    spans[(device, quantity)] = (oldest, kept)
    return sum(
        _delete_by_day(
            engine,
            "counter_readings",
            "school_id = :school AND device_id = :device AND quantity = :quantity",
            {**school, "device": device, "quantity": quantity},
            oldest_ms,
            kept_ms,
        )
        for (device, quantity), (oldest_ms, kept_ms) in spans.items()
    )


def _prune_dead_letters(engine: Engine, cutoff_ms: int) -> int:
    deleted = 0
    while True:
        with engine.begin() as connection:
            count = (
                connection.execute(
                    text(
                        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters "
                        "WHERE received_ms < :cutoff ORDER BY received_ms LIMIT :limit)"
                    ),
                    {"cutoff": cutoff_ms, "limit": DEAD_LETTERS_PER_TRANSACTION},
                ).rowcount
                or 0
            )
        deleted += count
        if count < DEAD_LETTERS_PER_TRANSACTION:
            return deleted
