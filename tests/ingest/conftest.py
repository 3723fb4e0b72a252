"""Fixtures of the ingest's tests: a migrated database (SQLite and PostgreSQL) with synthetic schools, stores
over it, and message builders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cloud.db.engine import make_engine
from cloud.db.register import prepare_database, sync_register
from cloud.ingest.store import Message, StoreOptions, TelemetryStore
from cloud.settings import Settings
from common.wire import Channel, Sample, TelemetryBatch, encode, school_topic
from tests import servers
from tests.cloud.conftest import make_site, write_sites
from tests.conftest import fill_from_template, migrate

# 2026-03-02T10:00:00Z, a quarter-hour boundary: "now" for the store's tests.
NOW_MS = 1_772_445_600_000


class SettableClock:
    """A clock the test sets to any time, forward or back (`common.clock.Clock`)."""

    speed = 0.0

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms

    def set(self, now_ms: int) -> None:
        self.ms = now_ms

    async def sleep_until(self, epoch_ms: int) -> None:
        raise NotImplementedError("nothing sleeps on this clock")

    def spec(self) -> str:
        raise NotImplementedError("a settable clock lives in one process")


def unique_id(prefix: str) -> str:
    """An id no other test uses, valid as a school id, a client id and a shared-subscription group."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass
class IngestDb:
    """A migrated database with the test's own synthetic schools (40 kWp, an inverter and a meter)."""

    url: str
    engine: Engine
    clock: SettableClock
    school_ids: list[str]
    settings: Settings

    def add_school(self) -> str:
        """Register one more school; its id."""
        school_id = unique_id("x")
        with self.engine.begin() as connection:
            sync_register(connection, [make_site(school_id)])
        return school_id

    def store(self, **options: object) -> TelemetryStore:
        return TelemetryStore(self.engine, self.clock, None, StoreOptions(**options))  # type: ignore[arg-type]

    def scalar(self, sql: str, **parameters: object) -> object:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), parameters).scalar()

    def rows(self, sql: str, **parameters: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), parameters)]


@pytest.fixture
def ingest_db(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[IngestDb]:
    school_ids = [unique_id("s"), unique_id("s")]
    settings = Settings(
        database_url=database_url,
        sites_dir=write_sites(tmp_path / "sites", school_ids),
        ingest_group=unique_id("g"),
        ingest_client_id=unique_id("ingest-"),
        ingest_session_expiry_s=600,
    )
    fill_from_template(database_url, request, "migrated", migrate)
    prepare_database(settings)
    engine = make_engine(database_url)
    try:
        yield IngestDb(database_url, engine, SettableClock(NOW_MS), school_ids, settings)
    finally:
        engine.dispose()


def telemetry(
    school_id: str, samples: list[Sample], stream: str = "a1b2c3d4", backfill: bool = False
) -> Message:
    batch = TelemetryBatch(
        school=school_id, stream=stream, backfill=backfill, sent_ms=NOW_MS, samples=samples
    )
    return Message(school_topic(school_id, Channel.TELEMETRY), encode(batch), NOW_MS)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Broker]:
    """A broker of this module's own: the session's broker holds retained statuses of other tests' schools,
    which a worker subscribed to every school's status would count as messages (and dead letters)."""
    with servers.mosquitto(tmp_path_factory.mktemp("ingest-broker")) as running:
        yield running
