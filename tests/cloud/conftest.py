"""Fixtures of the cloud tests: a registered database with schools of the test's own, message builders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cloud.db.engine import make_engine
from cloud.db.register import prepare_database
from cloud.ingest.counters import QUARTER_HOUR_MS
from cloud.settings import Settings
from common.broker import parse_broker_url
from common.clock import ManualClock
from common.mqtt import make_client
from common.sites import Site, write_site
from common.wire import DeviceKind, Sample, TelemetryBatch
from tests import servers
from tests.conftest import fill_from_template, migrate

# 2026-03-02T10:00:00Z (11:00 in Warsaw), a quarter-hour boundary: "now" for the tests.
NOW_MS = 1_772_445_600_000
Q = QUARTER_HOUR_MS


def unique_id(prefix: str) -> str:
    """An id no other test uses, valid as a school id, a client id and a shared-subscription group."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def make_site(school_id: str) -> Site:
    """A school with one PV inverter and one grid meter."""
    return Site.model_validate(
        {
            "id": school_id,
            "name": f"Szkoła testowa {school_id}",
            "type": "primary_school",
            "address": "ul. Testowa 1, 98-220 Zduńska Wola",
            "location": {"lat": 51.6, "lon": 18.94},
            "pv_kwp": 40.0,
            "pupils": 300,
            "devices": [
                {
                    "id": "inverter",
                    "kind": "pv_inverter",
                    "profile": "sunspec-inverter",
                    "transport": {"type": "tcp", "host": "127.0.0.1"},
                },
                {
                    "id": "meter",
                    "kind": "grid_meter",
                    "profile": "eastron-sdm630",
                    "transport": {"type": "tcp", "host": "127.0.0.1"},
                },
            ],
        }
    )


def write_sites(directory: Path, school_ids: list[str], poll_period_s: int | None = None) -> Path:
    """`make_site`'s schools as site files (polled every ``poll_period_s`` when given)."""
    directory.mkdir(parents=True, exist_ok=True)
    for school_id in school_ids:
        school = make_site(school_id)
        if poll_period_s is not None:
            school = school.model_copy(update={"poll_period_s": poll_period_s})
        write_site(school, directory)
    return directory


def pv_sample(seq: int, ts_ms: int, energy_wh: float | None, power_w: float | None = 1000.0) -> Sample:
    return Sample(
        seq=seq,
        device="inverter",
        kind=DeviceKind.PV_INVERTER,
        ts_ms=ts_ms,
        values={"energy_wh": energy_wh, "power_w": power_w},
    )


def meter_sample(
    seq: int, ts_ms: int, import_wh: float, export_wh: float, power_w: float | None = 200.0
) -> Sample:
    return Sample(
        seq=seq,
        device="meter",
        kind=DeviceKind.GRID_METER,
        ts_ms=ts_ms,
        values={"import_wh": import_wh, "export_wh": export_wh, "power_w": power_w},
    )


def make_batch(
    school_id: str, samples: list[Sample], stream: str = "a1b2c3d4", backfill: bool = False
) -> TelemetryBatch:
    return TelemetryBatch(school=school_id, stream=stream, backfill=backfill, sent_ms=NOW_MS, samples=samples)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)


@dataclass
class CloudDb:
    """A migrated database with the test's own schools registered."""

    settings: Settings
    engine: Engine
    clock: ManualClock
    school_ids: list[str]


@pytest.fixture
def cloud_db(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CloudDb]:
    school_ids = [unique_id("t"), unique_id("t")]
    settings = Settings(
        database_url=database_url,
        sites_dir=write_sites(tmp_path / "sites", school_ids),
        ingest_group=unique_id("g"),
        ingest_client_id=unique_id("ingest-"),
        ingest_session_expiry_s=120,
    )
    fill_from_template(database_url, request, "migrated", migrate)
    prepare_database(settings)
    engine = make_engine(database_url)
    try:
        yield CloudDb(settings, engine, ManualClock(NOW_MS), school_ids)
    finally:
        engine.dispose()


Publish = Callable[..., None]


@pytest.fixture
def publish(broker: servers.Broker) -> Iterator[Publish]:
    """Publish at QoS 1 to the test broker and wait until the broker has the message."""
    client = make_client(parse_broker_url(broker.url), unique_id("publisher-"))
    client.connect(broker.host, broker.port)
    client.loop_start()

    def send(topic: str, payload: bytes, retain: bool = False) -> None:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"the broker did not take the message on {topic}"

    try:
        yield send
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def ingest_settings(cloud_db: CloudDb, broker: servers.Broker) -> Settings:
    """The test database's settings pointed at the test broker."""
    return cloud_db.settings.model_copy(update={"mqtt_url": broker.url})
